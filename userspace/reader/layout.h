// SPDX-License-Identifier: Apache-2.0
/// @file C++ view of bpf/insa_shared.h: the same structs, with the sizes and
/// offsets the BPF side was compiled with pinned by static_assert. A mismatch
/// fails the build instead of misreading a map.
#pragma once

#include <cstddef>
#include <cstdint>

#include "insa_shared.h"

static_assert(sizeof(insa_key) == 8 + INSA_KEY_BYTES);
static_assert(offsetof(insa_key, data) == 8);
static_assert(sizeof(insa_count) == 16);
static_assert(sizeof(insa_hist) == 24 + 8 * (INSA_MAX_BUCKETS + 1));
static_assert(offsetof(insa_hist, last) == 16 + 8 * (INSA_MAX_BUCKETS + 1));
static_assert(sizeof(insa_gauge) == 16);
static_assert(sizeof(insa_quota) == 16);
static_assert(sizeof(insa_metric_stats) == 8);
static_assert(sizeof(insa_probe_stats) == 7 * 8);
static_assert(sizeof(insa_label_src) == 4);
static_assert(sizeof(insa_rule) == 16);
static_assert(offsetof(insa_action, metric) == 16);
static_assert(offsetof(insa_action, value_const) == 24);
static_assert(offsetof(insa_action, cond) == 32);
static_assert(offsetof(insa_action, bounds) == 48 + 4 * INSA_MAX_LABELS);
static_assert(sizeof(insa_action) == 48 + 4 * INSA_MAX_LABELS + 8 * INSA_MAX_BUCKETS);
static_assert(offsetof(insa_probe_spec, rules) == 24);
static_assert(sizeof(insa_exit_event) == 24);
static_assert(sizeof(insa_exec_event) == 32);  // the ring buffer tells the two apart by size
static_assert(sizeof(insa_span_key) == 16);
