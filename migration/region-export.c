/*
 * common-regions: the region export (QEMU side)
 *
 * Copyright (c) 2026 The migration-transport authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The guest's pages are indexed by hash with the fingerprint's walk,
 * and a thread per connection on a unix socket answers which hashes the
 * index holds and serves their pages, each hashed again just before it
 * is sent (region-proto.h).  See docs/devel/migration/common-regions.rst.
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/rcu.h"
#include "qemu/thread.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-migration.h"
#include "block/thread-pool.h"
#include "exec/target_page.h"
#include "io/channel-socket.h"
#include "io/net-listener.h"
#include "system/ramblock.h"
#include "common-regions.h"
#include "region-fingerprint.h"
#include "region-proto.h"
#include "trace.h"

/* A page of the export's index: where the page had that hash. */
typedef struct ExportPage {
    uint8_t hash[RFP_HASH_LEN];
    uint32_t block;             /* index in RegionExport.blocks */
    uint64_t offset;
} ExportPage;

typedef struct ExportConn {
    struct RegionExport *ex;
    QIOChannel *ioc;
    QemuThread thread;
    bool done;                  /* atomic: the thread has finished */
} ExportConn;

typedef struct RegionExport {
    char *path;
    QIONetListener *listener;
    /* Immutable while the export runs: read by the connection threads. */
    char **blocks;              /* idstr of each block indexed */
    ExportPage *pages;
    uint64_t nr_pages;
    GHashTable *index;          /* hash -> ExportPage */
    /* Under the BQL. */
    GList *conns;
    /* Atomic counters. */
    uint64_t connections;
    uint64_t hashes_asked;
    uint64_t pages_served;
    uint64_t pages_changed;
    uint64_t pages_unknown;
    uint64_t protocol_errors;
} RegionExport;

/* Under the BQL; NULL while no export runs. */
static RegionExport *region_export;

static guint export_hash(gconstpointer key)
{
    const uint8_t *h = key;

    return ldl_he_p(h);
}

static gboolean export_equal(gconstpointer a, gconstpointer b)
{
    return !memcmp(a, b, RFP_HASH_LEN);
}

typedef struct IndexBuild {
    RegionExport *ex;
    GArray *pages;
    GPtrArray *blocks;
} IndexBuild;

static bool index_block(const RfpHeader *h, const RfpBlock *b, void *opaque)
{
    IndexBuild *ib = opaque;

    g_ptr_array_add(ib->blocks, g_strdup(b->idstr));
    return true;
}

static bool index_region(const RfpHeader *h, const RfpBlock *b,
                         const RfpRegion *r, void *opaque)
{
    IndexBuild *ib = opaque;
    const uint8_t *ph = r->page_hashes;

    for (unsigned i = 0; i < r->npages; i++) {
        ExportPage p = {
            .block = b->index,
            .offset = r->offset + ((uint64_t)i << h->geo.page_shift),
        };

        if (!(r->mask & (1ull << i))) {
            continue;
        }
        memcpy(p.hash, ph, RFP_HASH_LEN);
        ph += RFP_HASH_LEN;
        g_array_append_val(ib->pages, p);
    }
    return true;
}

typedef struct ExportJob {
    FingerprintJob fp;
    RegionExport *ex;
} ExportJob;

/* Index the guest's pages by hash.  In a worker thread, without the BQL. */
static int export_index_worker(void *opaque)
{
    ExportJob *job = opaque;
    RegionExport *ex = job->ex;
    g_autoptr(GByteArray) out = g_byte_array_new();
    static const RfpVisitor visitor = {
        .block = index_block,
        .region = index_region,
    };
    IndexBuild ib = {
        .ex = ex,
        .pages = g_array_new(false, false, sizeof(ExportPage)),
        .blocks = g_ptr_array_new(),
    };
    const char *err;
    RfpHeader hdr;
    int ret = fingerprint_ram(&job->fp, out);

    if (ret == 0 && !rfp_scan(out->data, out->len, &hdr, &visitor, &ib, NULL,
                              &err)) {
        job->fp.error = g_strdup_printf("the index is not valid: %s", err);
        ret = -EIO;
    }
    g_ptr_array_add(ib.blocks, NULL);
    ex->blocks = (char **)g_ptr_array_free(ib.blocks, false);
    ex->nr_pages = ib.pages->len;
    ex->pages = (ExportPage *)g_array_free(ib.pages, false);
    ex->index = g_hash_table_new(export_hash, export_equal);
    for (uint64_t i = 0; ret == 0 && i < ex->nr_pages; i++) {
        /* the first page of a content wins; the others are not needed */
        if (!g_hash_table_contains(ex->index, ex->pages[i].hash)) {
            g_hash_table_insert(ex->index, ex->pages[i].hash, &ex->pages[i]);
        }
    }
    return ret;
}

/*
 * Copy the page that had @hash into @buf and check that it still has it.
 * Returns the status to send.
 */
static uint8_t export_read_page(RegionExport *ex, const uint8_t *hash,
                                uint8_t *buf)
{
    size_t psize = qemu_target_page_size();
    uint8_t now[RFP_HASH_LEN];
    ExportPage *p = g_hash_table_lookup(ex->index, hash);
    bool copied = false;

    if (!p) {
        qatomic_inc(&ex->pages_unknown);
        return RXP_UNKNOWN;
    }
    WITH_RCU_READ_LOCK_GUARD() {
        RAMBlock *rb = qemu_ram_block_by_name(ex->blocks[p->block]);

        if (rb && p->offset + psize <= qatomic_read(&rb->used_length)) {
            memcpy(buf, rb->host + p->offset, psize);
            copied = true;
        }
    }
    if (!copied || !common_regions_sha256(buf, psize, now) ||
        memcmp(now, hash, RFP_HASH_LEN)) {
        qatomic_inc(&ex->pages_changed);
        return RXP_CHANGED;
    }
    qatomic_inc(&ex->pages_served);
    return RXP_GOT;
}

/* Serve one connection until it breaks a rule, closes or is shut down. */
static void *export_conn_thread(void *opaque)
{
    ExportConn *c = opaque;
    RegionExport *ex = c->ex;
    size_t psize = qemu_target_page_size();
    g_autofree uint8_t *hashes = g_malloc(RXP_MAX_HAVE * RFP_HASH_LEN);
    g_autofree uint8_t *reply = g_malloc(RXP_HEADER_SIZE +
                                         MAX(rxp_have_reply_size(RXP_MAX_HAVE),
                                             RXP_MAX_GET * (1 + psize)));
    uint8_t msg[RXP_HELLO_REPLY_SIZE];
    const char *err = NULL;
    uint32_t count;
    uint8_t op;

    if (qio_channel_read_all(c->ioc, (char *)msg, RXP_HELLO_SIZE,
                             NULL) < 0) {
        goto out;
    }
    if (!rxp_hello_decode(msg, psize, &err)) {
        goto refuse;
    }
    rxp_hello_reply_encode(msg, psize, ex->nr_pages);
    if (qio_channel_write_all(c->ioc, (char *)msg, RXP_HELLO_REPLY_SIZE,
                              NULL) < 0) {
        goto out;
    }
    for (;;) {
        size_t len = RXP_HEADER_SIZE;

        if (qio_channel_read_all(c->ioc, (char *)msg, RXP_HEADER_SIZE,
                                 NULL) < 0) {
            goto out;
        }
        if (!rxp_header_decode(msg, &op, &count, &err)) {
            goto refuse;
        }
        if (qio_channel_read_all(c->ioc, (char *)hashes,
                                 (size_t)count * RFP_HASH_LEN, NULL) < 0) {
            goto out;
        }
        qatomic_add(&ex->hashes_asked, count);
        memcpy(reply, msg, RXP_HEADER_SIZE);
        if (op == RXP_OP_HAVE) {
            memset(reply + len, 0, rxp_have_reply_size(count));
            for (uint32_t i = 0; i < count; i++) {
                if (g_hash_table_contains(ex->index,
                                          hashes + i * RFP_HASH_LEN)) {
                    rxp_have_set(reply + len, i);
                }
            }
            len += rxp_have_reply_size(count);
        } else {
            for (uint32_t i = 0; i < count; i++) {
                uint8_t st = export_read_page(ex, hashes + i * RFP_HASH_LEN,
                                              reply + len + 1);

                reply[len] = st;
                len += 1 + (st == RXP_GOT ? psize : 0);
            }
        }
        if (qio_channel_write_all(c->ioc, (char *)reply, len, NULL) < 0) {
            goto out;
        }
    }

refuse:
    qatomic_inc(&ex->protocol_errors);
    trace_common_regions_export_refused(err);
out:
    qio_channel_shutdown(c->ioc, QIO_CHANNEL_SHUTDOWN_BOTH, NULL);
    qatomic_set(&c->done, true);
    return NULL;
}

static void export_conn_reap(RegionExport *ex, bool all)
{
    GList *l = ex->conns;

    while (l) {
        GList *next = l->next;
        ExportConn *c = l->data;

        if (all) {
            qio_channel_shutdown(c->ioc, QIO_CHANNEL_SHUTDOWN_BOTH, NULL);
        }
        if (all || qatomic_read(&c->done)) {
            qemu_thread_join(&c->thread);
            object_unref(OBJECT(c->ioc));
            g_free(c);
            ex->conns = g_list_delete_link(ex->conns, l);
        }
        l = next;
    }
}

static void export_accept(QIONetListener *listener, QIOChannelSocket *sioc,
                          gpointer opaque)
{
    RegionExport *ex = opaque;
    ExportConn *c = g_new0(ExportConn, 1);

    export_conn_reap(ex, false);
    c->ex = ex;
    c->ioc = QIO_CHANNEL(sioc);
    object_ref(OBJECT(sioc));
    qio_channel_set_name(c->ioc, "common-regions-export");
    qio_channel_set_blocking(c->ioc, true, NULL);
    qatomic_inc(&ex->connections);
    trace_common_regions_export_connection(ex->connections);
    qemu_thread_create(&c->thread, "cr-export", export_conn_thread, c,
                       QEMU_THREAD_JOINABLE);
    ex->conns = g_list_prepend(ex->conns, c);
}

static void region_export_free(RegionExport *ex)
{
    if (ex->listener) {
        qio_net_listener_disconnect(ex->listener);
        object_unref(OBJECT(ex->listener));
        unlink(ex->path);
    }
    export_conn_reap(ex, true);
    if (ex->index) {
        g_hash_table_destroy(ex->index);
    }
    g_strfreev(ex->blocks);
    g_free(ex->pages);
    g_free(ex->path);
    g_free(ex);
}

void coroutine_fn qmp_common_regions_export_start(const char *path,
                                                  Error **errp)
{
    ExportJob job = { .fp.filename = path };
    RegionExport *ex;
    SocketAddress addr = {
        .type = SOCKET_ADDRESS_TYPE_UNIX,
        .u.q_unix.path = (char *)path,
    };

    if (region_export) {
        error_setg(errp, "A region export is running already, on '%s'",
                   region_export->path);
        return;
    }
    if (!fingerprint_job_init(&job.fp, COMMON_REGIONS_DEFAULT_REGION_SIZE,
                              errp)) {
        return;
    }
    ex = g_new0(RegionExport, 1);
    ex->path = g_strdup(path);
    job.ex = ex;
    /* set before the wait, so that a second start is refused meanwhile */
    region_export = ex;
    if (thread_pool_submit_co(export_index_worker, &job) < 0) {
        error_setg(errp, "Cannot index the guest's pages: %s",
                   job.fp.error);
        g_free(job.fp.error);
        goto fail;
    }
    ex->listener = qio_net_listener_new();
    qio_net_listener_set_name(ex->listener, "common-regions-export");
    if (qio_net_listener_open_sync(ex->listener, &addr, 4, errp) < 0) {
        object_unref(OBJECT(ex->listener));
        ex->listener = NULL;
        goto fail;
    }
    qio_net_listener_set_client_func(ex->listener, export_accept, ex, NULL);
    trace_common_regions_export_start(path, ex->nr_pages);
    return;

fail:
    region_export = NULL;
    region_export_free(ex);
}

void qmp_common_regions_export_stop(Error **errp)
{
    RegionExport *ex = region_export;

    if (!ex || !ex->listener) {
        error_setg(errp, "No region export is running");
        return;
    }
    region_export = NULL;
    trace_common_regions_export_stop(ex->path, ex->pages_served);
    region_export_free(ex);
}

CommonRegionsExportInfo *qmp_query_common_regions_export(Error **errp)
{
    CommonRegionsExportInfo *info = g_new0(CommonRegionsExportInfo, 1);
    RegionExport *ex = region_export;

    info->active = ex && ex->listener;
    if (info->active) {
        info->path = g_strdup(ex->path);
        info->has_pages = true;
        info->pages = ex->nr_pages;
        info->has_connections = true;
        info->connections = qatomic_read(&ex->connections);
        info->has_hashes_asked = true;
        info->hashes_asked = qatomic_read(&ex->hashes_asked);
        info->has_pages_served = true;
        info->pages_served = qatomic_read(&ex->pages_served);
        info->has_pages_changed = true;
        info->pages_changed = qatomic_read(&ex->pages_changed);
        info->has_pages_unknown = true;
        info->pages_unknown = qatomic_read(&ex->pages_unknown);
        info->has_protocol_errors = true;
        info->protocol_errors = qatomic_read(&ex->protocol_errors);
    }
    return info;
}
