# SPDX-License-Identifier: GPL-2.0-or-later
#
# x86 bootblock for migration tests that need a bounded dirty rate.
#
# Like a-b-bootblock.S it increments the first byte of each page of
# [X86_TEST_MEM_START, X86_TEST_MEM_END) in order, so the framework's
# check_guests_ram() verifies it the same way, but it waits pace_ticks
# ticks of the ACPI PM timer (3.579545 MHz) after each page.  The dirty
# rate is then set by the test, not by the speed of the accelerator,
# and a throttled vCPU really dirties less: after a throttle sleep the
# loop does not catch up.  Prints 'A' once, then a 'B' after each pass.
#
# Copyright (c) 2026 The migration-transport authors
# Based on a-b-bootblock.S, Copyright (c) 2016 Red Hat, Inc.

#define ACPI_PM_TIMER       0x608   /* ICH9 PM base 0x600 + 8, set by SeaBIOS */
#define PM_TIMER_MASK       0xffffff

/* X86_TEST_MEM_START and X86_TEST_MEM_END of ../bootfile.h */
#define X86_TEST_MEM_START  (1 * 1024 * 1024)
#define X86_TEST_MEM_END    (100 * 1024 * 1024)

.code16
.org 0x7c00
        .file   "paced.s"
        .text
        .globl  start
        .type   start, @function
start:
        cli
        lgdt gdtdesc
        mov $1,%eax
        mov %eax,%cr0
        data32 ljmp $8,$0x7c20

.org 0x7c20
.code32
        inb $0x92,%al
        or  $2,%al
        outb %al, $0x92
        mov $16,%eax
        mov %eax,%ds

.set TEST_MEM_START, X86_TEST_MEM_START
.set TEST_MEM_END, X86_TEST_MEM_END

        mov $65,%al
        mov $0x3f8,%dx
        outb %al,%dx

        mov $TEST_MEM_START,%esi
do_zero:
        movb $0,(%esi)
        add $4096,%esi
        cmp $TEST_MEM_END,%esi
        jl do_zero

        mov $ACPI_PM_TIMER,%dx
        inl %dx,%eax
        mov %eax,%edi                   # edi: timer at the last page
mainloop:
        mov $TEST_MEM_START,%esi
innerloop:
        incb (%esi)
        add $4096,%esi
        mov $ACPI_PM_TIMER,%dx
pace:
        inl %dx,%eax
        mov %eax,%ecx
        sub %edi,%eax
        and $PM_TIMER_MASK,%eax         # ticks since the last page
        cmp (pace_ticks),%eax
        jb pace
        mov %ecx,%edi                   # no catch-up after a long gap
        cmp $TEST_MEM_END,%esi
        jl innerloop

        mov $66,%al
        mov $0x3f8,%dx
        outb %al,%dx
        jmp mainloop

        # GDT from a-b-bootblock.S
        .p2align        2
gdt:
        .word   0, 0
        .byte   0, 0, 0, 0
        .word   0xFFFF, 0
        .byte   0, 0x9A, 0xCF, 0
        .word   0xFFFF, 0
        .byte   0, 0x92, 0xCF, 0

gdtdesc:
        .word   0x27
        .long   gdt

        /* the test writes the ticks to wait after each page here */
pace_ticks:
        .int  0

.org 0x7dfe
        .byte 0x55
        .byte 0xAA
