// SPDX-License-Identifier: Apache-2.0
/// @file observable.h
/// Marks the functions of the demo "legacy" programs that probes.yaml maps to metrics.
///
/// The demo programs contain no metrics code. insa-exporter observes them from outside with
/// uprobes, so every event a metric needs is one call of one out-of-line function, and every
/// value is an integer, pointer or `const char*` argument or the integer return value.
/// GCC's `noipa` implies noinline, noclone (no `.constprop`/`.isra` copies under another
/// symbol name) and no_icf (two identical bodies are never folded into one address), and it
/// stops the caller from assuming anything about the callee, so the call is never elided.
/// https://gcc.gnu.org/onlinedocs/gcc/Common-Function-Attributes.html#index-noipa-function-attribute
#pragma once

#if defined(__clang__)
#define INSA_OBSERVABLE __attribute__((noinline, used, visibility("default")))
#else
#define INSA_OBSERVABLE __attribute__((noipa, used, visibility("default")))
#endif

/// Marker functions (whose only job is to be probed) store their first argument here, so the
/// body is never empty: an empty function compiles to a lone `ret`, and then its entry and its
/// return site would be the same instruction.
inline volatile long insa_marker_sink;
#define INSA_MARKER_BODY(x) (insa_marker_sink = (long)(x))
