#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the per-CPU byte fixtures read by tests/unit/reader_test.cpp.

Layout (bpf/insa_shared.h, little-endian x86_64), one value per CPU back to back
as the kernel returns per-CPU map values (each slot rounded up to 8 bytes; both
structs are already multiples of 8):
  struct insa_hist        { u64 count; s64 sum; u64 buckets[17];
                            u64 last; }                               160 bytes
  struct insa_count       { s64 sum; u64 last; }                       16 bytes
  struct insa_probe_stats { u64 hits, completed, exceptions, abandoned,
                            unmatched, overflow, dropped; }             56 bytes
CPU c (0-based) holds, with k = c + 1:
  hist : count = 100k + 1, sum = (12345 - 2^40) k, buckets[b] = (b + 1) k for
         b < 16, buckets[16] (+Inf) = 2^33 k, last = L(k)
  count: sum = (3 - 2^41) k, last = L(k)
  where L(k) = 2^50 for k = 2 (CPU 1 updated the series last) and 1000k otherwise.
  stats: hits = 1000k, completed = 900k, exceptions = k, abandoned = 2k,
         unmatched = 3k, overflow = 2^35 k, dropped = 7k
Run from this directory: ./make_percpu_fixtures.py
"""
import struct


def last(k):
    return 1 << 50 if k == 2 else 1000 * k


def hist(k):
    buckets = [(b + 1) * k for b in range(16)] + [(1 << 33) * k]
    return struct.pack("<Qq18Q", 100 * k + 1, (12345 - (1 << 40)) * k, *buckets, last(k))


def count(k):
    return struct.pack("<qQ", (3 - (1 << 41)) * k, last(k))


def stats(k):
    return struct.pack("<7Q", 1000 * k, 900 * k, k, 2 * k, 3 * k, (1 << 35) * k, 7 * k)


for n in (1, 2, 4):
    with open(f"hist_cpu{n}.bin", "wb") as f:
        f.write(b"".join(hist(c + 1) for c in range(n)))
    with open(f"count_cpu{n}.bin", "wb") as f:
        f.write(b"".join(count(c + 1) for c in range(n)))
    with open(f"stats_cpu{n}.bin", "wb") as f:
        f.write(b"".join(stats(c + 1) for c in range(n)))
