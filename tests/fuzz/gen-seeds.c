/*
 * Write the seed corpus of the fuzz targets
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Valid inputs, made with the units' own encoders, so that the fuzzer
 * starts past the checksums and magic numbers:
 *
 *   build/fuzz/tests/fuzz/gen-seeds tests/fuzz/corpus
 *
 * writes tests/fuzz/corpus/<target>/<seed>; the output is committed.
 */

#include "qemu/osdep.h"
#include "wire-codec.h"
#include "spill-format.h"
#include "disk-map.h"
#include "region-fingerprint.h"
#include "region-proto.h"
#include "fuzz.h"

static const char *top;

static void put(const char *target, const char *name, const void *buf,
                size_t len)
{
    g_autofree char *dir = g_build_filename(top, target, NULL);
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GError) err = NULL;

    g_mkdir_with_parents(dir, 0755);
    if (!g_file_set_contents(path, buf, len, &err)) {
        fprintf(stderr, "gen-seeds: %s\n", err->message);
        exit(1);
    }
}

/* Append a spill record to @w. */
static void rec(WireWriter *w, SpillRecType type, uint16_t block,
                uint64_t seq, uint64_t offset, const void *payload,
                uint32_t len)
{
    uint8_t *buf = g_malloc(spill_record_size(len));

    spill_record_encode(buf, type, block, seq, offset, payload, len);
    wire_put_bytes(w, buf, spill_record_size(len));
    g_free(buf);
}

static void block_payload(uint8_t *buf, uint64_t length, const char *idstr)
{
    WireWriter w;

    wire_writer_init(&w, buf, 8 + strlen(idstr));
    wire_put_le64(&w, length);
    wire_put_bytes(&w, idstr, strlen(idstr));
}

static void spill_seeds(void)
{
    static const char T[] = "fuzz-spill-format";
    SpillHeader h = { .page_size = 512, .uuid = "fuzz-spill-uuid" };
    uint8_t *buf = g_malloc0(16384), blk[8 + 16], page[512];
    uint8_t hdr[SPILL_HEADER_SIZE];
    WireWriter w;
    size_t i;

    for (i = 0; i < sizeof(page); i++) {
        page[i] = i * 7;
    }

    /* a complete file: two blocks, a page, the stream, END */
    wire_writer_init(&w, buf, 16384);
    wire_put_u8(&w, 0);
    wire_put_u8(&w, 6);
    wire_put_le32(&w, h.page_size);
    wire_put_bytes(&w, h.uuid, SPILL_UUID_LEN);
    block_payload(blk, 4 * 512, "pc.ram");
    rec(&w, SPILL_REC_BLOCK, 0, 1, 0, blk, 8 + 6);
    block_payload(blk, 512, "vga.vram");
    rec(&w, SPILL_REC_BLOCK, 1, 2, 0, blk, 8 + 8);
    rec(&w, SPILL_REC_PAGE, 0, 5, 3 * 512, page, sizeof(page));
    rec(&w, SPILL_REC_STREAM, 0, 6, 0, "QEVM\0\0\0\3", 8);
    rec(&w, SPILL_REC_STREAM, 0, 9, 8, "\x04\x00\x01", 3);
    rec(&w, SPILL_REC_END, 0, 11, 0, NULL, 0);
    put(T, "complete", buf, wire_writer_len(&w));

    /* the same, cut in the page record: a truncated file */
    put(T, "truncated", buf, 2 + 20 + 2 * 48 + 300);

    /* checksums fixed up by the target, ends in ABORT */
    wire_writer_init(&w, buf, 16384);
    wire_put_u8(&w, FUZZ_SPILL_FIX_CHECKS);
    wire_put_u8(&w, 30);
    wire_put_le32(&w, h.page_size);
    wire_put_bytes(&w, h.uuid, SPILL_UUID_LEN);
    block_payload(blk, 512, "ram");
    rec(&w, SPILL_REC_BLOCK, 0, 1, 0, blk, 8 + 3);
    rec(&w, SPILL_REC_STREAM, 0, 2, 0, "QEVM", 4);
    rec(&w, SPILL_REC_ABORT, 0, 3, 0, NULL, 0);
    put(T, "abort", buf, wire_writer_len(&w));

    /* the header as raw bytes */
    h.page_size = 4096;
    wire_writer_init(&w, buf, 16384);
    wire_put_u8(&w, FUZZ_SPILL_RAW_HEADER);
    wire_put_u8(&w, 63);
    spill_header_encode(hdr, &h);
    wire_put_bytes(&w, hdr, SPILL_HEADER_SIZE);
    block_payload(blk, 4096, "ram");
    rec(&w, SPILL_REC_BLOCK, 0, 7, 0, blk, 8 + 3);
    rec(&w, SPILL_REC_STREAM, 0, 8, 0, "QEVM", 4);
    rec(&w, SPILL_REC_END, 0, 9, 0, NULL, 0);
    put(T, "raw-header", buf, wire_writer_len(&w));

    /* the position files: the input is read as one too */
    spill_pos_encode(buf, SPILL_ACK_MAGIC, h.uuid,
                     (uint64_t[]) { 123456, 4096 }, 2);
    put(T, "ack", buf, SPILL_ACK_SIZE);
    spill_pos_encode(buf, SPILL_LOADED_MAGIC, h.uuid,
                     (uint64_t[]) { 8192 }, 1);
    put(T, "loaded", buf, SPILL_LOADED_SIZE);
    g_free(buf);
}

/* A disk map input: mode, disk size, header page, then DATA_GPA on. */
static void disk_map_seed(const char *name, uint8_t mode, uint64_t disk_size,
                          uint32_t nseg, const uint64_t (*seg)[2],
                          const uint64_t (*recs)[2], size_t nrecs)
{
    uint8_t buf[1024];
    uint64_t count = 0;
    WireWriter w;
    size_t i;

    for (i = 0; i < nseg; i++) {
        count += seg[i][1];
    }
    wire_writer_init(&w, buf, sizeof(buf));
    wire_put_u8(&w, mode);
    wire_put_le64(&w, disk_size);
    wire_put_le16(&w, DISK_MAP_HEADER_SIZE + nseg * DISK_MAP_SEGMENT_SIZE);
    wire_put_le64(&w, DISK_MAP_MAGIC);
    wire_put_le32(&w, DISK_MAP_VERSION);
    wire_put_le32(&w, nseg);
    wire_put_le64(&w, 4);               /* generation */
    wire_put_le64(&w, count);
    wire_put_le32(&w, DISK_MAP_PAGE_SIZE);
    wire_put_le32(&w, DISK_MAP_PAGE_SIZE);
    for (i = 0; i < 3; i++) {
        wire_put_le64(&w, 0);
    }
    for (i = 0; i < nseg; i++) {
        wire_put_le64(&w, seg[i][0]);
        wire_put_le64(&w, seg[i][1]);
    }
    for (i = 0; i < nrecs; i++) {
        wire_put_le64(&w, recs[i][0]);
        wire_put_le64(&w, recs[i][1]);
    }
    assert(wire_writer_ok(&w));
    put("fuzz-disk-map", name, buf, wire_writer_len(&w));
}

static void disk_map_seeds(void)
{
    /* records at DATA_GPA; a second segment in RAM that reads as zeros */
    static const uint64_t seg[][2] = {
        { FUZZ_DISK_MAP_DATA_GPA, 6 },
        { 0x200000, 2 },
    };
    static const uint64_t recs[][2] = {
        { 0x300000, 1 },
        { 0x301000 | DISK_MAP_REC_MODIFIED, 2 },
        { 0x302000, 3 },
        { 0x302000, 4 },                /* a duplicate page */
        { 0x303000, 255 },              /* the disk's last frame */
        { 0x304000, 256 },              /* past the disk's end */
    };
    uint8_t buf[64], hash[DISK_REF_HASH_LEN];
    WireWriter w;

    disk_map_seed("map", 0, 1 << 20, 2, seg, recs, 6);
    disk_map_seed("map-fixed", FUZZ_DISK_MAP_FIX_HEADER, 1 << 20, 1, seg,
                  recs, 6);

    /* a DISK_REF record: no map (no header bytes), then the record */
    memset(hash, 0xab, sizeof(hash));
    wire_writer_init(&w, buf, sizeof(buf));
    wire_put_u8(&w, 0);
    wire_put_le64(&w, 1 << 20);
    wire_put_le16(&w, 0);
    disk_ref_encode(buf + wire_writer_len(&w), 8192, hash);
    put("fuzz-disk-map", "disk-ref", buf, 11 + DISK_REF_RECORD_LEN);

    /* a DISK_REF_NACK: no map, then the message */
    put("fuzz-disk-map", "disk-ref-nack", buf,
        11 + disk_ref_nack_encode(buf + 11, 0x66000, "pc.ram"));

    /* postcopy's table of references: no map, then two entries */
    {
        uint8_t tab[11 + 1 + 6 + 2 * DISK_REF_TABLE_ENTRY_LEN];
        uint8_t rec[DISK_REF_RECORD_LEN];
        size_t len;

        memcpy(tab, buf, 11);
        disk_ref_encode(rec, 8192, hash);
        len = disk_ref_table_start(tab + 11, "pc.ram");
        len = disk_ref_table_add(tab + 11, len, 0x66000, rec);
        len = disk_ref_table_add(tab + 11, len, 0x67000, rec);
        put("fuzz-disk-map", "disk-ref-table", tab, 11 + len);
    }
}

static void wire_seeds(void)
{
    static const uint8_t ops[] = {
        FUZZ_WIRE_U8, FUZZ_WIRE_BE16, FUZZ_WIRE_BE32, FUZZ_WIRE_BE64,
        FUZZ_WIRE_LE16, FUZZ_WIRE_LE32, FUZZ_WIRE_LE64,
        FUZZ_WIRE_BYTES, 5, FUZZ_WIRE_SPAN, 3, FUZZ_WIRE_SKIP, 2,
        FUZZ_WIRE_FITS, FUZZ_WIRE_OVERLAP, FUZZ_WIRE_SPAN, 255,
        FUZZ_WIRE_U8,
    };
    uint8_t buf[1 + sizeof(ops) + 96];
    size_t i;

    buf[0] = sizeof(ops);
    memcpy(buf + 1, ops, sizeof(ops));
    for (i = 1 + sizeof(ops); i < sizeof(buf); i++) {
        buf[i] = i * 13;
    }
    put("fuzz-wire-codec", "all-ops", buf, sizeof(buf));
    buf[0] = sizeof(ops) | FUZZ_WIRE_NULL_BUFFER;
    put("fuzz-wire-codec", "null-buffer", buf, 1 + sizeof(ops) + 8);
}

static void sha256(const void *buf, size_t len, uint8_t out[RFP_HASH_LEN],
                   void *opaque)
{
    GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
    gsize n = RFP_HASH_LEN;

    g_checksum_update(c, buf, len);
    g_checksum_get_digest(c, out, &n);
    g_checksum_free(c);
}

static bool all_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;

    return !p[0] && !memcmp(p, p + 1, len - 1);
}

/* Two blocks: regions of 4 pages, one partial; a zero block. */
static void rfp_seeds(void)
{
    RfpGeometry g = { .page_shift = 12, .region_shift = 14 };
    g_autofree uint8_t *mem = g_malloc0(10 * 4096);
    g_autoptr(GByteArray) out = g_byte_array_new();
    RfpWriter w;
    uint8_t mode;

    memset(mem + 4096, 0x11, 4096);
    memset(mem + 4 * 4096, 0x22, 3 * 4096);
    mem[9 * 4096 + 7] = 1;
    for (mode = 0; mode < 4; mode += 3) {
        g_byte_array_set_size(out, 0);
        g_byte_array_append(out, &mode, 1);
        rfp_writer_init(&w, &g, 3, sha256, all_zero, NULL, out);
        rfp_writer_block(&w, "pc.ram", mem, 10 * 4096);
        rfp_writer_block(&w, "zero", mem, 4096);
        rfp_writer_block(&w, "tail", mem + 8 * 4096, 2 * 4096);
        rfp_writer_finish(&w);
        put("fuzz-region-fingerprint", mode ? "fixed" : "three-blocks",
            out->data, out->len);
    }
}

/* A hello reply, then a GET header; a HAVE header. */
static void rxp_seeds(void)
{
    uint8_t buf[RXP_HELLO_REPLY_SIZE];

    rxp_hello_reply_encode(buf, 4096, 1000);
    put("fuzz-region-proto", "hello-reply", buf, sizeof(buf));
    rxp_header_encode(buf, RXP_OP_HAVE, 17);
    put("fuzz-region-proto", "have", buf, RXP_HEADER_SIZE);
    rxp_header_encode(buf, RXP_OP_GET, RXP_MAX_GET);
    put("fuzz-region-proto", "get", buf, RXP_HEADER_SIZE);
    {
        uint8_t held[RXP_HELD_MAX_LEN], bm[3] = { 0xff, 0x01, 0x80 };
        RxpHeld m = {
            .kind = RXP_HELD_PAGES, .block = 1, .first_page = 64,
            .bytes = sizeof(bm), .bitmap = bm,
        };

        put("fuzz-region-proto", "held", held, rxp_held_encode(held, &m));
        m = (RxpHeld) { .kind = RXP_HELD_DONE, .pages = 11 };
        put("fuzz-region-proto", "held-done", held,
            rxp_held_encode(held, &m));
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen-seeds CORPUS-DIR\n");
        return 1;
    }
    top = argv[1];
    spill_seeds();
    disk_map_seeds();
    wire_seeds();
    rfp_seeds();
    rxp_seeds();
    return 0;
}
