/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every struct and constant that crosses the kernel/user boundary of
 * insa-exporter. Included by bpf/insa.bpf.c and by the C++ side, which adds
 * static_asserts on sizes (userspace/reader/layout.h). Change a layout here
 * and only here; CMake rebuilds both sides.
 *
 * Data flow: probes.yaml is compiled by userspace into one insa_probe_spec per
 * attach point (the attach cookie is its index in the `specs` map). The
 * generic programs read the spec, evaluate its actions and aggregate into
 * `counters` (per-CPU: sum), `histograms` (per-CPU: buckets, sum, count) and
 * `gauges` (shared). Keys are (series id, captured label bytes); userspace owns
 * the meaning of both. Each metric has a quota of keys (`quotas`, counted live
 * by the kernel): a new key beyond it is folded into the metric's `other` key,
 * so one metric's cardinality never takes another metric's room.
 */
#ifndef INSA_SHARED_H
#define INSA_SHARED_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define INSA_MAX_PROBES 512   /* specs map entries: attach points with a cookie */
#define INSA_MAX_ACTIONS 6    /* metric updates one probe performs */
#define INSA_MAX_LABELS 4     /* kernel-captured label slots per action */
#define INSA_MAX_RULES 4      /* status rules per probe, first match wins */
#define INSA_MAX_BUCKETS 16   /* finite `le` bounds per histogram (+Inf implied) */
#define INSA_MAX_ARGS 6       /* SysV integer argument registers */
#define INSA_MAX_FRAMES 32    /* open probed calls tracked per thread */
#define INSA_KEY_BYTES 128    /* captured label bytes in an aggregation key */
#define INSA_STR_MAX 64       /* longest string a label slot may capture */

/* Where a value (label, histogram observation, rule operand) comes from. */
enum insa_src {
	INSA_SRC_NONE = 0,
	INSA_SRC_CONST = 1,    /* action.value_const */
	INSA_SRC_ARG = 2,      /* integer argument n (1-based) */
	INSA_SRC_ARG_STR = 3,  /* NUL-terminated string at argument n */
	INSA_SRC_RET = 4,      /* return value (rax at the exit site) */
	INSA_SRC_DURATION = 5, /* ns from entry to exit of the same call */
	INSA_SRC_STATUS = 6,   /* status index chosen by the probe's rules */
	INSA_SRC_PID = 7,      /* tgid of the process */
	INSA_SRC_EXC = 8,      /* Python: hash of the exception type name (0: none) */
	INSA_SRC_EXC_STR = 9,  /* Python: the exception type name (tp_name) */
	INSA_SRC_RET_STR = 10, /* Python: the returned str */
	INSA_SRC_RET_NONE = 11,/* Python: 1 when the call returned None */
};
/* Flag on an integer source: sign-extend the low 32 bits (C `int` arguments and returns). */
#define INSA_SRC_I32 0x80

/* What an action does to its series. */
enum insa_op {
	INSA_OP_COUNT = 1,      /* counter: sum += value (value defaults to 1) */
	INSA_OP_OBSERVE = 2,    /* histogram: bucket, sum, count */
	INSA_OP_GAUGE_ADD = 3,  /* gauge += value */
	INSA_OP_GAUGE_SUB = 4,  /* gauge -= value */
	INSA_OP_GAUGE_SET = 5,  /* gauge = value */
	INSA_OP_INFLIGHT = 6,   /* gauge +1 at entry, -1 when the call ends in any way */
	INSA_OP_SPAN_BEGIN = 7, /* remember now under (span series, pid, value) */
	INSA_OP_SPAN_END = 8,   /* observe now - begin into this histogram series */
};

enum insa_when {
	INSA_AT_ENTRY = 0,
	INSA_AT_EXIT = 1,
};

enum insa_cmp {
	INSA_CMP_LT = 1,
	INSA_CMP_LE,
	INSA_CMP_EQ,
	INSA_CMP_NE,
	INSA_CMP_GT,
	INSA_CMP_GE,
};

/* Cookie bit of an exit attached as a uretprobe: rsp there is entry rsp + 8. */
#define INSA_COOKIE_URET (1u << 31)
/* Cookie bit of an exit site that is a tail jmp: rax there is not the return value. */
#define INSA_COOKIE_TAIL (1u << 30)
/* Probe spec flag: abandoned calls run exit updates with abandoned_status. */
#define INSA_PROBE_ABANDON_STATUS (1u << 3)

/* Probe spec flags. */
#define INSA_PROBE_TRACKED (1u << 0) /* entry pushes a frame; exit sites pop it */
#define INSA_PROBE_CATCH (1u << 1)   /* this attach point is the C++ catch hook */
#define INSA_PROBE_PYTHON (1u << 2)  /* a Python function: calls found by code object */

/* One label slot of the key: `len` bytes at `offset` of insa_key.data. */
struct insa_label_src {
	__u8 src;    /* enum insa_src */
	__u8 arg;    /* 1-based argument for ARG/ARG_STR */
	__u8 offset; /* byte offset in insa_key.data */
	__u8 len;    /* 8 for integers, capture length for strings */
};

/* A status rule: if (src cmp value) then status. */
struct insa_rule {
	__u8 src; /* RET, DURATION or ARG */
	__u8 arg;
	__u8 cmp; /* enum insa_cmp */
	__u8 status;
	__u32 pad;
	__s64 value;
};

struct insa_action {
	__u32 series;     /* key.series: userspace maps it to family + static labels */
	__u8 op;          /* enum insa_op */
	__u8 when;        /* enum insa_when (INFLIGHT ignores it) */
	__u8 value_src;   /* enum insa_src for the observed/added value */
	__u8 value_arg;   /* argument for ARG */
	__u8 nlabels;
	__u8 nbounds;
	__u8 span_arg;    /* SPAN_*: 1-based argument that keys the span */
	__u8 pad;
	__u32 span_series; /* SPAN_BEGIN: series of the matching SPAN_END action */
	__u32 metric;      /* index of the metric: its quota in `quotas` */
	__u32 pad2;
	__s64 value_const;
	struct insa_rule cond;  /* `if:` of the update: applied only when it holds (cmp 0: always) */
	struct insa_label_src labels[INSA_MAX_LABELS];
	__s64 bounds[INSA_MAX_BUCKETS]; /* ascending `le` bounds in value units (ns for durations) */
};

struct insa_probe_spec {
	__u32 flags;          /* INSA_PROBE_* */
	__u32 owner;          /* exit sites: spec index of the function's entry */
	__u8 nactions;
	__u8 nrules;
	__u8 default_status;   /* status when no rule matches */
	__u8 exception_status; /* status of a call left by a C++ exception */
	__u8 abandoned_status; /* status of a call that never returned (longjmp, thread/process exit) */
	__u8 pad8;
	__u16 pad16;
	__s64 entry_sp_delta;  /* rsp at entry site + delta == rsp at function entry */
	struct insa_rule rules[INSA_MAX_RULES];
	struct insa_action actions[INSA_MAX_ACTIONS];
};

/* insa_key.flags: the metric's quota was full; captured labels (all but $status)
 * are zeroed and the series is exported with the value `other`. */
#define INSA_KEY_OTHER 1u

/* Aggregation key for counters, histograms and gauges. */
struct insa_key {
	__u32 series;
	__u32 flags; /* INSA_KEY_* */
	__u8 data[INSA_KEY_BYTES];
};

/* Per-CPU value of a counter series. `last`: bpf_ktime_get_ns() (CLOCK_MONOTONIC)
 * of the last update on that CPU; userspace expires series idle for too long. */
struct insa_count {
	__s64 sum;
	__u64 last;
};

/* Per-CPU value of a histogram series. */
struct insa_hist {
	__u64 count;
	__s64 sum;
	__u64 buckets[INSA_MAX_BUCKETS + 1]; /* non-cumulative; last is +Inf */
	__u64 last;
};

/* Value of a gauge series (one shared value). */
struct insa_gauge {
	__s64 value;
	__u64 last;
};

/* Series quota of one metric (`quotas`, an mmap-able array indexed by metric):
 * `live` keys of the metric's map, not counting its `other` keys. The kernel
 * adds one before inserting a key (and takes it back if the key is folded);
 * userspace takes one off for each key it expires. */
struct insa_quota {
	__s64 live;
	__s64 limit;
};

/* Per-metric self statistics (per-CPU array indexed by metric). */
struct insa_metric_stats {
	__u64 folded; /* updates that went to the metric's `other` key (quota full) */
};

/* Silent losses, counted by reason (per-CPU array `lost`). */
enum insa_lost {
	INSA_LOST_STR_READ = 0,  /* a label's string could not be read (bad pointer, unmapped page) */
	INSA_LOST_RINGBUF = 1,   /* an exec/exit event found the ring buffer full */
	INSA_LOST_SPAN_FULL = 2, /* a span begin found the spans map full */
	INSA_LOST_MAX = 3,
};

/* Per-probe self statistics (per-CPU array indexed by spec index). */
struct insa_probe_stats {
	__u64 hits;      /* times the attach point fired */
	__u64 completed; /* tracked calls closed by an exit site */
	__u64 exceptions;/* tracked calls closed by a C++ catch below them */
	__u64 abandoned; /* frames reclaimed: thread exit, longjmp, lost exit */
	__u64 unmatched; /* exit with no open frame (attached mid-call) */
	__u64 overflow;  /* entry not tracked: frame stack full */
	__u64 dropped;   /* updates lost: no room even for the `other` key (kernel out of memory) */
};

/* An open probed call, kept in task storage. */
struct insa_frame {
	__u64 sp; /* rsp at function entry (address of the return address) */
	__u64 ts;
	__u32 probe;
	__u32 pad;
	__u64 args[INSA_MAX_ARGS];
};

struct insa_frames {
	__u32 depth;
	__u32 pad;
	struct insa_frame f[INSA_MAX_FRAMES];
};

struct insa_span_key {
	__u32 series;
	__u32 tgid;
	__s64 id;
};

/* Ring buffer event: a process exec'd a file. Shares the ring buffer with
 * insa_exit_event (so a short-lived process's exec is read before its exit) and
 * is told apart by its size. */
struct insa_exec_event {
	__u32 tgid;
	__u32 pad;
	__u64 dev; /* kernel dev_t of the file's filesystem: MAJOR << 20 | MINOR */
	__u64 ino;
	__u64 pad2;
};

/* Ring buffer event: a process (thread group) exited. */
struct insa_exit_event {
	__u32 tgid;
	__s32 exit_code; /* wait status: (code << 8) | signal */
	char comm[16];
};

/*
 * Python probes. The generic programs sit at the interpreter's
 * _PyEval_EvalFrameDefault entry (uprobe) and return (uretprobe); the cookie
 * indexes `py_layouts` (one entry per interpreter file: its struct offsets).
 * A frame's code object is matched once against `py_targets` (qualname and
 * file suffix) and the decision cached per (process, code object).
 */
#define INSA_MAX_PY_LAYOUTS 16
#define INSA_MAX_PY_TARGETS 32 /* also the bits of a py_pid_targets mask (__u32) */
/* py_pid_targets: tgid -> __u32 mask of the py_targets a process may match (bit i =
 * target i: the probes whose script/module/pid select it). No entry: every target. */
#define INSA_MAX_PY_PIDS 4096
#define INSA_PY_NAME 64        /* qualname and file suffix bytes, NUL included */
#define INSA_PY_STACK 16       /* open matched frames per thread */

enum insa_py_conv {
	INSA_PY_INT = 1, /* int / bool value (0 for other types) */
	INSA_PY_LEN = 2, /* len() of str, bytes, list, tuple, dict (0 for other types) */
	INSA_PY_STR = 3, /* pointer to the text of a str (ASCII, or its cached UTF-8) */
};

/* Offsets in bytes into one interpreter build's structs (userspace/python/interp.cpp). */
struct insa_py_layout {
	__u32 version;          /* PY_VERSION_HEX */
	__u16 frame_code;       /* _PyInterpreterFrame.f_code / f_executable */
	__u16 frame_instr;      /* prev_instr (3.11, 3.12) / instr_ptr (3.13) */
	__u16 frame_owner;
	__u16 frame_localsplus;
	__u16 code_qualname;
	__u16 code_filename;
	__u16 tstate_exc;       /* curexc_type (3.11) / current_exception */
	__u16 gen_iframe;       /* generator object -> its embedded frame */
	__u16 gen_state;        /* generator object -> gi_frame_state (int8) */
	__u16 str_ascii;        /* compact ASCII str -> text */
	__u16 str_utf8;         /* compact str -> cached UTF-8 pointer */
	__u16 str_utf8_len;
	__u8 exc_is_type;       /* tstate_exc holds the type (3.11), else the instance */
	__u8 instr_is_next;     /* frame_instr points at the next instruction (3.13) */
	__u8 op_return_generator;
	__u8 long_tagged;       /* 3.12+: PyLongObject.long_value.lv_tag */
	__u32 pad;
	__s64 none_delta;       /* &_Py_NoneStruct - &_PyEval_EvalFrameDefault (link-time) */
	/* The per-call mechanism (RESUME handler + frame clear): finding the thread state. */
	__u64 runtime;          /* &_PyRuntime, link-time */
	__u64 site_vaddr[2];    /* link-time address of each RESUME site (cookie bits 8..15) */
	__u64 clear_vaddr;      /* link-time address of the frame-clear function */
	__u16 gilstate_tstate;  /* 3.11: _PyRuntime offset of the GIL holder's tstate; 0: walk */
	__u16 interp_head;      /* _PyRuntime -> main interpreter */
	__u16 threads_head;     /* interpreter -> first thread state */
	__u16 tstate_next;
	__u16 tstate_tid;       /* native_thread_id */
	__u16 tstate_frame;     /* tstate -> cframe (3.11, 3.12) or current_frame (3.13) */
	__s16 cframe_frame;     /* cframe -> current_frame; -1: tstate_frame is the frame */
	__u8 op_resume[2];      /* RESUME and its specialized form */
	__u8 op_yield;          /* YIELD_VALUE */
	__u8 pad2[5];
};

struct insa_py_slot {
	__u8 conv;  /* enum insa_py_conv, 0: unused */
	__u8 local; /* index in frame->localsplus (0 = first parameter) */
	__u8 pad[2];
};

struct insa_py_target {
	__u32 spec;      /* insa_probe_spec index (cookie of the probe) */
	__u32 tgid;      /* 0: any process */
	__u8 qual_len;   /* bytes of qualname, without NUL */
	__u8 file_len;   /* bytes of file suffix */
	__u8 ret_conv;   /* enum insa_py_conv for $ret */
	__u8 per_call;   /* seen by the per-call mechanism (RESUME + frame clear), not at frame entry */
	struct insa_py_slot slots[INSA_MAX_ARGS]; /* $argN of the probe's actions */
	__u32 pad2;
	char qualname[INSA_PY_NAME];
	char file[INSA_PY_NAME];
};

struct insa_py_code_key {
	__u32 tgid;
	__u32 pad;
	__u64 code;
};

struct insa_py_code_val {
	__s32 target;    /* index in py_targets, -1: no probe */
	__u32 pad;
	__u64 qualname;  /* co_qualname when decided: a reused address is noticed */
};

struct insa_py_call_key {
	__u32 tgid;
	__u32 pad;
	__u64 frame;
};

/* A matched call in progress (function: until its frame returns; coroutine or
 * generator: from its first step to its completion). */
struct insa_py_call {
	__u64 ts;
	__u32 target;
	__u32 per_call; /* opened by the per-call mechanism */
	__u64 code;
	__u64 args[INSA_MAX_ARGS];
};

struct insa_py_open {
	__u64 sp;     /* rsp at _PyEval_EvalFrameDefault entry */
	__u64 frame;
	__u64 tstate;
	__u32 target;
	__u32 gen;    /* frame owned by a generator/coroutine */
	__u64 none;   /* address of None in this process */
};

struct insa_py_stack {
	__u32 depth;
	__u32 pad;
	__u64 tstate; /* this thread's PyThreadState, once found (per-call mechanism, 3.12+) */
	struct insa_py_open e[INSA_PY_STACK];
};

#endif /* INSA_SHARED_H */
