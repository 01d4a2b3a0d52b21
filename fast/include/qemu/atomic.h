/*
 * Stand-in for QEMU's qemu/atomic.h in the fast tier
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Only the accessors the policy units use, with the semantics of QEMU's
 * (include/qemu/atomic.h).
 */

#ifndef FAST_QEMU_ATOMIC_H
#define FAST_QEMU_ATOMIC_H

#define qatomic_read(ptr)       __atomic_load_n(ptr, __ATOMIC_RELAXED)
#define qatomic_set(ptr, i)     __atomic_store_n(ptr, i, __ATOMIC_RELAXED)
#define qatomic_inc(ptr)        ((void)__atomic_fetch_add(ptr, 1, __ATOMIC_SEQ_CST))
#define qatomic_xchg(ptr, i)    __atomic_exchange_n(ptr, i, __ATOMIC_SEQ_CST)
/* returns the value found, like QEMU's */
#define qatomic_cmpxchg(ptr, old, new) ({                               \
    typeof(*(ptr)) _old = (old);                                        \
    (void)__atomic_compare_exchange_n(ptr, &_old, new, false,          \
                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
    _old;                                                               \
})

#endif
