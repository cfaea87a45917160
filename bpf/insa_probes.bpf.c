// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The generic programs of insa-exporter. One program per role, attached at
 * many points; the attach cookie indexes `specs`, which probes.yaml filled.
 *
 *   insa_entry  uprobe at a function's entry (or a cheaper site in its entry block)
 *   insa_exit   uprobe at each return site (ret / tail jmp), found by decoding the ELF
 *   insa_catch  uprobe at libstdc++'s __cxa_begin_catch: closes frames an exception unwound
 *   insa_usdt   USDT probe (event only)
 *   insa_task_exit  sched_process_exit: reclaims frames of a dying thread, reports exits
 *
 * Entry and exit pair by (thread, rsp): the stack pointer at entry equals the
 * one at the function's return instruction, so recursion and nested probed
 * calls pair exactly, and frames the stack has moved past are known dead.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/usdt.bpf.h>
#include "insa_shared.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INSA_MAX_PROBES);
	__type(key, __u32);
	__type(value, struct insa_probe_spec);
} specs SEC(".maps");

/*
 * Aggregation maps, one per kind of value so a plain counter never carries a
 * histogram's 17 buckets (times the CPU count). Userspace sizes them before
 * load: the sum of the metrics' quotas plus their `other` keys.
 *
 * BPF_F_NO_PREALLOC: userspace deletes idle series (expiry). A preallocated
 * hash map hands a deleted element to the next insert at once, while a program
 * on another CPU may still be adding to it through its pointer, so a count
 * could land in another series; a run-time allocated element is freed only
 * after an RCU grace period. It also means memory follows the live series
 * instead of being charged for max_entries up front.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384); /* resized by userspace before load */
	__type(key, struct insa_key);
	__type(value, struct insa_count);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384); /* resized by userspace before load */
	__type(key, struct insa_key);
	__type(value, struct insa_hist);
} histograms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384); /* resized by userspace before load */
	__type(key, struct insa_key);
	__type(value, struct insa_gauge);
} gauges SEC(".maps");

/* Series quota per metric (insa_shared.h); mmap-ed by userspace, which takes a
 * key off `live` when it expires one. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1); /* resized by userspace: one per metric */
	__type(key, __u32);
	__type(value, struct insa_quota);
} quotas SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1); /* resized by userspace: one per metric */
	__type(key, __u32);
	__type(value, struct insa_metric_stats);
} metric_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, INSA_LOST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Open spans. A plain hash (not LRU) so that no begin is ever lost unseen: a
 * full map refuses the begin (counted in `lost`), and userspace removes spans
 * older than the series expiry (counted too). No prealloc: userspace deletes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct insa_span_key);
	__type(value, __u64);
} spans SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct insa_frames);
} frames SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, INSA_MAX_PROBES);
	__type(key, __u32);
	__type(value, struct insa_probe_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} exits SEC(".maps");

/* Key under construction plus slack so a bounded string write never leaves the value. */
struct scratch {
	struct insa_key key;
	__u8 slack[INSA_STR_MAX];
	/* The last string read from user memory: several updates of one call usually
	 * label by the same argument, and a user read costs far more than a copy. */
	__u64 str_ptr;
	__u64 str_now;
	__u32 str_len;
	__u32 pad;
	__u64 str[INSA_STR_MAX / 8];
	/* Initial value of a new series: zero, with `last` set (a series inserted with
	 * last == 0 would look idle to a concurrent expiry sweep). */
	struct insa_hist init;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

/* Values an action can read. */
struct call_ctx {
	__u64 args[INSA_MAX_ARGS];
	__s64 ret;
	__u64 duration;
	__u64 now;
	__u32 status;
	__u32 tgid;
	__u32 no_ret; /* left by an exception: updates that read $ret are skipped */
	__u32 probe;  /* spec index of the probe: self statistics */
	__u32 exc_hash; /* Python: hash of the exception type name, 0: none */
	__u32 ret_none; /* Python: returned None */
	__u64 exc_name; /* Python: user pointer to the exception type name */
};

/* PH_EXCEPTION runs exit actions with the probe's exception status; PH_TAIL is
 * an exit at a tail jmp, where rax is not the return value (no $ret). */
enum phase { PH_ENTRY, PH_EXIT, PH_ABANDON, PH_EXCEPTION, PH_TAIL };

#define LOST_INC(reason)                                                  \
	do {                                                              \
		__u32 __k = (reason);                                     \
		__u64 *__v = bpf_map_lookup_elem(&lost, &__k);            \
		if (__v)                                                  \
			(*__v)++;                                         \
	} while (0)

#define STAT_INC(id, field)                                               \
	do {                                                              \
		__u32 __k = (id);                                         \
		struct insa_probe_stats *__s = bpf_map_lookup_elem(&stats, &__k); \
		if (__s)                                                  \
			__s->field++;                                     \
	} while (0)

static __always_inline __u64 arg_at(const struct call_ctx *c, __u8 arg)
{
	__u32 i = arg - 1;
	if (i >= INSA_MAX_ARGS)
		return 0;
	return c->args[i];
}

static __always_inline __s64 eval_src_raw(__u8 src, __u8 arg, __s64 konst, const struct call_ctx *c)
{
	switch (src) {
	case INSA_SRC_CONST:
		return konst;
	case INSA_SRC_ARG:
		return (__s64)arg_at(c, arg);
	case INSA_SRC_RET:
		return c->ret;
	case INSA_SRC_DURATION:
		return (__s64)c->duration;
	case INSA_SRC_STATUS:
		return c->status;
	case INSA_SRC_PID:
		return c->tgid;
	case INSA_SRC_EXC:
		return c->exc_hash;
	case INSA_SRC_RET_NONE:
		return c->ret_none;
	}
	return 1;
}

static __always_inline __s64 eval_src(__u8 src, __u8 arg, __s64 konst, const struct call_ctx *c)
{
	if (src & INSA_SRC_I32) /* C int: only the low 32 bits of the register are defined */
		return (__s32)eval_src_raw(src & ~INSA_SRC_I32, arg, konst, c);
	return eval_src_raw(src, arg, konst, c);
}

static __always_inline int cmp_ok(__u8 cmp, __s64 a, __s64 b)
{
	switch (cmp) {
	case INSA_CMP_LT: return a < b;
	case INSA_CMP_LE: return a <= b;
	case INSA_CMP_EQ: return a == b;
	case INSA_CMP_NE: return a != b;
	case INSA_CMP_GT: return a > b;
	case INSA_CMP_GE: return a >= b;
	}
	return 0;
}

static __always_inline int reads_ret(__u8 src)
{
	src &= ~INSA_SRC_I32;
	return src == INSA_SRC_RET || src == INSA_SRC_RET_STR || src == INSA_SRC_RET_NONE;
}

static __always_inline __u32 classify(const struct insa_probe_spec *spec, const struct call_ctx *c)
{
	for (int i = 0; i < INSA_MAX_RULES; i++) {
		if (i >= spec->nrules)
			break;
		const struct insa_rule *r = &spec->rules[i];
		if (c->no_ret && reads_ret(r->src))
			continue; /* left by a Python exception, or a tail-jmp exit: no return value */
		__s64 v = eval_src(r->src, r->arg, 0, c);
		if (cmp_ok(r->cmp, v, r->value))
			return r->status;
	}
	/* A Python exception no rule named takes the probe's exception status. */
	return c->exc_hash ? spec->exception_status : spec->default_status;
}

/* Fills s->key for action a; returns 0 on success. */
static __always_inline int build_key(struct scratch *s, const struct insa_action *a, const struct call_ctx *c)
{
	/* Zero the key in 8-byte stores (the scratch value is 8-aligned; a memset of
	 * the 4-aligned struct would take twice as many). */
	__u64 *z = (__u64 *)&s->key;
	for (int i = 0; i < sizeof(s->key) / 8; i++)
		z[i] = 0;
	s->key.series = a->series;
	for (int j = 0; j < INSA_MAX_LABELS; j++) {
		if (j >= a->nlabels)
			break;
		const struct insa_label_src *l = &a->labels[j];
		__u32 off = l->offset & (INSA_KEY_BYTES - 1);
		if (l->src == INSA_SRC_ARG_STR || l->src == INSA_SRC_RET_STR || l->src == INSA_SRC_EXC_STR) {
			__u32 len = l->len;
			if (len == 0 || len > INSA_STR_MAX)
				continue;
			__u64 p = l->src == INSA_SRC_ARG_STR ? arg_at(c, l->arg)
				  : l->src == INSA_SRC_RET_STR ? (__u64)c->ret : c->exc_name;
			if (!p)
				continue;
			if (s->str_ptr != p || s->str_now != c->now || s->str_len != len) {
				for (int k = 0; k < INSA_STR_MAX / 8; k++)
					s->str[k] = 0;
				if (bpf_probe_read_user_str(s->str, len, (const void *)p) < 0)
					LOST_INC(INSA_LOST_STR_READ); /* the label reads "" */
				s->str_ptr = p;
				s->str_now = c->now;
				s->str_len = len;
			}
			bpf_probe_read_kernel(&s->key.data[off], len, s->str);
		} else {
			__s64 v = eval_src(l->src, l->arg, 0, c);
			__u64 *slot = (__u64 *)s->key.data;
			slot[(off / 8) & (INSA_KEY_BYTES / 8 - 1)] = v;
		}
	}
	return 0;
}

/* s->key becomes the `other` key of its series: captured labels zeroed, except
 * $status (a finite set, kept apart). */
static __always_inline void fold_key(struct scratch *s, const struct insa_action *a, const struct call_ctx *c)
{
	__u64 *w = (__u64 *)s->key.data;
	for (int i = 0; i < INSA_KEY_BYTES / 8; i++)
		w[i] = 0;
	s->key.flags = INSA_KEY_OTHER;
	for (int j = 0; j < INSA_MAX_LABELS; j++) {
		if (j >= a->nlabels)
			break;
		const struct insa_label_src *l = &a->labels[j];
		if ((l->src & ~INSA_SRC_I32) == INSA_SRC_STATUS)
			w[(l->offset / 8) & (INSA_KEY_BYTES / 8 - 1)] = c->status;
	}
}

/*
 * The value of s->key in `map`, inserted (from s->init) when new. A new key
 * takes one of its metric's quota; beyond the quota (or when `no_new`: a gauge
 * decrement, whose increment went where the key was then) the update goes to
 * the metric's `other` key, which is outside the quota and always has room
 * (userspace sizes the maps for it). NULL only if the kernel cannot allocate.
 */
static __always_inline void *series_get(void *map, struct scratch *s, const struct insa_action *a,
					const struct call_ctx *c, int no_new, __u32 last_off)
{
	void *v = bpf_map_lookup_elem(map, &s->key);
	if (v)
		return v;
	__u64 *w = (__u64 *)&s->init;
	for (int i = 0; i < sizeof(s->init) / 8; i++)
		w[i] = 0;
	w[(last_off / 8) % (sizeof(s->init) / 8)] = c->now;
	__u32 m = a->metric;
	if (!no_new) {
		struct insa_quota *q = bpf_map_lookup_elem(&quotas, &m);
		if (q) {
			/* Take a slot first, so CPUs racing for the last one cannot both win. */
			if (__sync_fetch_and_add(&q->live, 1) < q->limit) {
				if (!bpf_map_update_elem(map, &s->key, &s->init, BPF_NOEXIST)) {
					v = bpf_map_lookup_elem(map, &s->key);
					if (v)
						return v;
				} else {
					__sync_fetch_and_add(&q->live, -1);
					/* another CPU inserted the same key meanwhile */
					v = bpf_map_lookup_elem(map, &s->key);
					if (v)
						return v;
				}
			} else {
				__sync_fetch_and_add(&q->live, -1);
			}
		}
	}
	fold_key(s, a, c);
	v = bpf_map_lookup_elem(map, &s->key);
	if (!v) {
		bpf_map_update_elem(map, &s->key, &s->init, BPF_NOEXIST);
		v = bpf_map_lookup_elem(map, &s->key);
	}
	if (v) {
		struct insa_metric_stats *ms = bpf_map_lookup_elem(&metric_stats, &m);
		if (ms)
			ms->folded++;
	}
	return v;
}

/* Returns -1 when the update is lost (counted). */
static __always_inline int count_add(struct scratch *s, const struct insa_action *a, const struct call_ctx *c, __s64 v)
{
	struct insa_count *h = series_get(&counters, s, a, c, 0, offsetof(struct insa_count, last));
	if (!h)
		return -1;
	__sync_fetch_and_add(&h->sum, v);
	h->last = c->now;
	return 0;
}

static __always_inline int observe(struct scratch *s, const struct insa_action *a, const struct call_ctx *c, __s64 v)
{
	struct insa_hist *h = series_get(&histograms, s, a, c, 0, offsetof(struct insa_hist, last));
	if (!h)
		return -1;
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum, v);
	h->last = c->now;
	__u32 b = a->nbounds;
	for (int i = 0; i < INSA_MAX_BUCKETS; i++) {
		if (i >= a->nbounds)
			break;
		if (v <= a->bounds[i]) {
			b = i;
			break;
		}
	}
	if (b <= INSA_MAX_BUCKETS)
		__sync_fetch_and_add(&h->buckets[b], 1);
	return 0;
}

/* `dec`: the end of an in-flight call or a `sub:`, which never creates a key: the
 * matching increment went to the key that existed then, or to `other` (a gauge
 * that is not zero is never expired). */
static __always_inline int gauge_apply(struct scratch *s, const struct insa_action *a, const struct call_ctx *c,
				       __u8 op, __s64 v, int dec)
{
	struct insa_gauge *g = series_get(&gauges, s, a, c, dec, offsetof(struct insa_gauge, last));
	if (!g)
		return -1;
	if (op == INSA_OP_GAUGE_SET)
		g->value = v;
	else
		__sync_fetch_and_add(&g->value, op == INSA_OP_GAUGE_SUB ? -v : v);
	g->last = c->now;
	return 0;
}

static __always_inline int uses_ret(const struct insa_action *a)
{
	if (reads_ret(a->value_src) || (a->cond.cmp && reads_ret(a->cond.src)))
		return 1;
	for (int j = 0; j < INSA_MAX_LABELS; j++) {
		if (j >= a->nlabels)
			break;
		if (reads_ret(a->labels[j].src))
			return 1;
	}
	return 0;
}

/* An abandoned call's end is not known (it is seen at the next probe hit or at thread
 * exit): updates that read $duration are skipped, like those that read $ret. */
#define NO_RET_NO_DURATION 2

static __always_inline int uses_duration(const struct insa_action *a)
{
	if ((a->value_src & ~INSA_SRC_I32) == INSA_SRC_DURATION ||
	    (a->cond.cmp && (a->cond.src & ~INSA_SRC_I32) == INSA_SRC_DURATION))
		return 1;
	for (int j = 0; j < INSA_MAX_LABELS; j++) {
		if (j >= a->nlabels)
			break;
		if ((a->labels[j].src & ~INSA_SRC_I32) == INSA_SRC_DURATION)
			return 1;
	}
	return 0;
}

/* One action; a global subprogram so the verifier checks it once, not per call site. */
__noinline int do_action(const struct insa_action *a, struct call_ctx *c, int ph)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s || !a || !c)
		return 0;
	__u8 op = a->op;
	__s64 v;
	if (op == INSA_OP_INFLIGHT) {
		build_key(s, a, c);
		if (gauge_apply(s, a, c, INSA_OP_GAUGE_ADD, ph == PH_ENTRY ? 1 : -1, ph != PH_ENTRY))
			STAT_INC(c->probe, dropped);
		return 0;
	}
	if (ph == PH_ABANDON || a->when != (ph == PH_ENTRY ? INSA_AT_ENTRY : INSA_AT_EXIT))
		return 0;
	if (c->no_ret && uses_ret(a))
		return 0;
	if (c->no_ret == NO_RET_NO_DURATION && uses_duration(a))
		return 0;
	if (a->cond.cmp && !cmp_ok(a->cond.cmp, eval_src(a->cond.src, a->cond.arg, 0, c), a->cond.value))
		return 0;
	v = eval_src(a->value_src, a->value_arg, a->value_const, c);
	if (op == INSA_OP_SPAN_BEGIN) {
		struct insa_span_key sk = { .series = a->span_series, .tgid = c->tgid,
					    .id = (__s64)arg_at(c, a->span_arg) };
		if (bpf_map_update_elem(&spans, &sk, &c->now, BPF_ANY))
			LOST_INC(INSA_LOST_SPAN_FULL);
		return 0;
	}
	if (op == INSA_OP_SPAN_END) {
		struct insa_span_key sk = { .series = a->series, .tgid = c->tgid,
					    .id = (__s64)arg_at(c, a->span_arg) };
		__u64 *begin = bpf_map_lookup_elem(&spans, &sk);
		if (!begin)
			return 0;
		v = (__s64)(c->now - *begin);
		bpf_map_delete_elem(&spans, &sk);
		op = INSA_OP_OBSERVE;
	}
	build_key(s, a, c);
	int lost;
	if (op == INSA_OP_COUNT)
		lost = count_add(s, a, c, v);
	else if (op == INSA_OP_OBSERVE)
		lost = observe(s, a, c, v);
	else
		lost = gauge_apply(s, a, c, op, v, op == INSA_OP_GAUGE_SUB);
	if (lost)
		STAT_INC(c->probe, dropped);
	return 0;
}

static __always_inline void run_actions(const struct insa_probe_spec *spec, int ph, struct call_ctx *c)
{
	for (int i = 0; i < INSA_MAX_ACTIONS; i++) {
		if (i >= spec->nactions)
			break;
		do_action(&spec->actions[i], c, ph);
	}
}

/* Closes one frame: normal exit, exception, or reclaim of a dead call. */
__noinline int finish(struct insa_frame *f, int ph, __s64 ret, __u64 now, __u32 tgid)
{
	if (!f)
		return 0;
	__u32 id = f->probe;
	const struct insa_probe_spec *spec = bpf_map_lookup_elem(&specs, &id);
	if (!spec)
		return 0;
	struct call_ctx c = { .ret = ret, .now = now, .tgid = tgid, .duration = now - f->ts, .probe = id };
	__builtin_memcpy(c.args, f->args, sizeof(c.args));
	if (ph == PH_ABANDON) {
		STAT_INC(id, abandoned);
		if (spec->flags & INSA_PROBE_ABANDON_STATUS) {
			c.status = spec->abandoned_status;
			c.no_ret = NO_RET_NO_DURATION;
			ph = PH_EXIT;
		}
	} else if (ph == PH_EXCEPTION) {
		c.status = spec->exception_status;
		c.no_ret = 1;
		STAT_INC(id, exceptions);
		ph = PH_EXIT;
	} else {
		if (ph == PH_TAIL) {
			c.no_ret = 1;
			ph = PH_EXIT;
		}
		c.status = classify(spec, &c);
		STAT_INC(id, completed);
	}
	run_actions(spec, ph, &c);
	return 0;
}

/* Pops frames whose sp is below `sp` (or equal, when `inclusive`): calls the stack has left. */
static __always_inline void reclaim_below(struct insa_frames *fs, __u64 sp, int inclusive, int exception, __u64 now, __u32 tgid)
{
	for (int i = 0; i < INSA_MAX_FRAMES; i++) {
		__u32 d = fs->depth;
		if (d == 0 || d > INSA_MAX_FRAMES)
			break;
		struct insa_frame *top = &fs->f[(d - 1) & (INSA_MAX_FRAMES - 1)];
		if (top->sp > sp || (top->sp == sp && !inclusive))
			break;
		fs->depth = d - 1;
		finish(top, exception ? PH_EXCEPTION : PH_ABANDON, 0, now, tgid);
	}
}

/* Finds the open frame of probe `id` among the frames entered at `sp` (the top of
 * the stack: two probes on one function share an sp, and their exit probes fire in
 * no set order), swaps it to the top and pops it. Returns it, or NULL. */
static __always_inline struct insa_frame *take_frame(struct insa_frames *fs, __u64 sp, __u32 id)
{
	__u32 d = fs->depth;
	if (d == 0 || d > INSA_MAX_FRAMES)
		return NULL;
	struct insa_frame *top = &fs->f[(d - 1) & (INSA_MAX_FRAMES - 1)];
	for (int i = 0; i < INSA_MAX_FRAMES; i++) {
		if (i >= d)
			break;
		struct insa_frame *f = &fs->f[(d - 1 - i) & (INSA_MAX_FRAMES - 1)];
		if (f->sp != sp)
			break;
		if (f->probe != id)
			continue;
		if (f != top) {
			__u64 *a = (__u64 *)f, *b = (__u64 *)top;
			for (int w = 0; w < sizeof(*f) / 8; w++) {
				__u64 t = a[w];
				a[w] = b[w];
				b[w] = t;
			}
		}
		fs->depth = d - 1;
		return top;
	}
	return NULL;
}

static __always_inline void load_args(struct pt_regs *ctx, __u64 *args)
{
	args[0] = ctx->di;
	args[1] = ctx->si;
	args[2] = ctx->dx;
	args[3] = ctx->cx;
	args[4] = ctx->r8;
	args[5] = ctx->r9;
}

SEC("uprobe")
int insa_entry(struct pt_regs *ctx)
{
	__u32 id = bpf_get_attach_cookie(ctx);
	const struct insa_probe_spec *spec = bpf_map_lookup_elem(&specs, &id);
	if (!spec)
		return 0;
	STAT_INC(id, hits);
	__u64 now = bpf_ktime_get_ns();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!(spec->flags & INSA_PROBE_TRACKED)) {
		struct call_ctx c = { .now = now, .tgid = tgid, .probe = id };
		load_args(ctx, c.args);
		run_actions(spec, PH_ENTRY, &c);
		return 0;
	}
	struct insa_frames *fs = bpf_task_storage_get(&frames, bpf_get_current_task_btf(), 0,
						      BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!fs) {
		STAT_INC(id, overflow); /* not tracked: no frame to end */
		return 0;
	}
	__u64 sp = ctx->sp + spec->entry_sp_delta;
	/* Anything below this call's frame is dead (longjmp, lost exit), and so is an
	 * earlier call of this probe at this very sp. Another probe's frame at this sp
	 * stays: a second probe on the same function, closed by its own exit probe (or,
	 * if it is stale, reclaimed by the next entry or exit above it). */
	reclaim_below(fs, sp, 0, 0, now, tgid);
	finish(take_frame(fs, sp, id), PH_ABANDON, 0, now, tgid);
	__u32 d = fs->depth;
	if (d >= INSA_MAX_FRAMES) {
		STAT_INC(id, overflow);
		return 0;
	}
	struct insa_frame *f = &fs->f[d & (INSA_MAX_FRAMES - 1)];
	f->sp = sp;
	f->probe = id;
	load_args(ctx, f->args);
	fs->depth = d + 1;
	struct call_ctx c = { .now = now, .tgid = tgid, .probe = id };
	__builtin_memcpy(c.args, f->args, sizeof(c.args));
	run_actions(spec, PH_ENTRY, &c);
	f->ts = bpf_ktime_get_ns(); /* exclude our own entry work from the duration */
	return 0;
}

SEC("uprobe")
int insa_exit(struct pt_regs *ctx)
{
	__u32 id = bpf_get_attach_cookie(ctx);
	__u64 sp = ctx->sp;
	int ph = (id & INSA_COOKIE_TAIL) ? PH_TAIL : PH_EXIT;
	id &= ~INSA_COOKIE_TAIL;
	if (id & INSA_COOKIE_URET) {
		id &= ~INSA_COOKIE_URET;
		sp -= 8; /* the return address has been popped */
	}
	struct insa_frames *fs = bpf_task_storage_get(&frames, bpf_get_current_task_btf(), 0, 0);
	if (!fs) {
		STAT_INC(id, unmatched);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	reclaim_below(fs, sp, 0, 0, now, tgid);
	struct insa_frame *top = take_frame(fs, sp, id);
	if (!top) {
		STAT_INC(id, unmatched);
		return 0;
	}
	finish(top, ph, (__s64)ctx->ax, now, tgid);
	return 0;
}

SEC("uprobe")
int insa_catch(struct pt_regs *ctx)
{
	struct insa_frames *fs = bpf_task_storage_get(&frames, bpf_get_current_task_btf(), 0, 0);
	if (!fs || fs->depth == 0)
		return 0;
	/* At __cxa_begin_catch entry, rsp is the catcher's rsp - 8; every probed call the
	 * exception unwound was entered at or below it, every live one above. */
	reclaim_below(fs, ctx->sp, 1, 1, bpf_ktime_get_ns(), bpf_get_current_pid_tgid() >> 32);
	return 0;
}

SEC("usdt")
int insa_usdt(struct pt_regs *ctx)
{
	__u32 id = (__u32)bpf_usdt_cookie(ctx);
	const struct insa_probe_spec *spec = bpf_map_lookup_elem(&specs, &id);
	if (!spec)
		return 0;
	STAT_INC(id, hits);
	struct call_ctx c = { .now = bpf_ktime_get_ns(), .tgid = bpf_get_current_pid_tgid() >> 32, .probe = id };
	int n = bpf_usdt_arg_cnt(ctx);
	for (int i = 0; i < INSA_MAX_ARGS; i++) {
		long v = 0;
		if (i >= n)
			break;
		bpf_usdt_arg(ctx, i, &v);
		c.args[i] = v;
	}
	run_actions(spec, PH_ENTRY, &c);
	return 0;
}

__noinline int py_reap_process(__u32 tgid);

/* Every exec on the host: userspace keeps those of worker binaries, so a worker
 * that lives shorter than the /proc scan still counts as started (and restarted). */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(insa_task_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct insa_exec_event *e = bpf_ringbuf_reserve(&exits, sizeof(*e), 0);
	if (!e) {
		LOST_INC(INSA_LOST_RINGBUF);
		return 0;
	}
	struct inode *inode = BPF_CORE_READ(bprm, file, f_inode);
	e->tgid = BPF_CORE_READ(p, tgid);
	e->pad = 0;
	e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->pad2 = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(insa_task_exit, struct task_struct *task)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	struct insa_frames *fs = bpf_task_storage_get(&frames, cur, 0, 0);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (fs && fs->depth)
		reclaim_below(fs, ~0ULL, 1, 0, bpf_ktime_get_ns(), tgid);

	/* The last thread of the group reports the process exit. */
	if (BPF_CORE_READ(cur, signal, live.counter) != 0)
		return 0;
	py_reap_process(tgid);
	struct insa_exit_event *e = bpf_ringbuf_reserve(&exits, sizeof(*e), 0);
	if (!e) {
		LOST_INC(INSA_LOST_RINGBUF);
		return 0;
	}
	e->tgid = tgid;
	e->exit_code = BPF_CORE_READ(cur, exit_code);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Python: calls of matched code objects, seen where the interpreter enters a
 * frame from C (_PyEval_EvalFrameDefault: thread targets, callbacks, every
 * generator and coroutine step on 3.11, a task's coroutine on 3.12+).
 * A coroutine or generator is one call from its first step (the previous
 * instruction is RETURN_GENERATOR) to the step that does not suspend it.
 * -------------------------------------------------------------------------*/

const volatile __u32 py_ntargets = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INSA_MAX_PY_LAYOUTS);
	__type(key, __u32);
	__type(value, struct insa_py_layout);
} py_layouts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INSA_MAX_PY_TARGETS);
	__type(key, __u32);
	__type(value, struct insa_py_target);
} py_targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct insa_py_code_key);
	__type(value, struct insa_py_code_val);
} py_codes SEC(".maps");

/* Which targets a hooked process may match (insa_shared.h): two probes on the same
 * function of a shared module, one per script, each count only their own processes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, INSA_MAX_PY_PIDS);
	__type(key, __u32);
	__type(value, __u32);
} py_pid_targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct insa_py_call_key);
	__type(value, struct insa_py_call);
} py_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct insa_py_stack);
} py_stacks SEC(".maps");

struct py_scratch {
	char qual[INSA_PY_NAME];
	char file[INSA_PY_NAME];
	char name[INSA_PY_NAME];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_scratch);
} py_scratch_map SEC(".maps");

#define PY_TPFLAGS_LONG (1UL << 24)
#define PY_TPFLAGS_LIST (1UL << 25)
#define PY_TPFLAGS_TUPLE (1UL << 26)
#define PY_TPFLAGS_BYTES (1UL << 27)
#define PY_TPFLAGS_UNICODE (1UL << 28)
#define PY_TPFLAGS_DICT (1UL << 29)
#define PY_OWNED_BY_GENERATOR 1

static __always_inline __u64 rd64(__u64 addr)
{
	__u64 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (const void *)addr);
	return v;
}

/* Text of a str object and its length in bytes; 0 when it is neither compact
 * ASCII nor has its UTF-8 cached. */
static __always_inline __u64 py_str(const struct insa_py_layout *L, __u64 obj, __u64 *len)
{
	__u32 state = 0;
	bpf_probe_read_user(&state, sizeof(state), (const void *)(obj + 32));
	if ((state & (1u << 5)) && (state & (1u << 6))) { /* compact, ascii */
		*len = rd64(obj + 16);
		return obj + L->str_ascii;
	}
	__u64 utf8 = rd64(obj + L->str_utf8);
	*len = utf8 ? rd64(obj + L->str_utf8_len) : 0;
	return utf8;
}

static __always_inline __s64 py_long(const struct insa_py_layout *L, __u64 obj)
{
	__u64 n;
	int neg;
	if (L->long_tagged) {
		__u64 tag = rd64(obj + 16);
		if ((tag & 3) == 1)
			return 0;
		neg = (tag & 3) == 2;
		n = tag >> 3;
	} else {
		__s64 size = (__s64)rd64(obj + 16);
		neg = size < 0;
		n = neg ? -size : size;
	}
	if (n == 0)
		return 0;
	if (n > 2)
		return neg ? (-0x7fffffffffffffffLL - 1) : 0x7fffffffffffffffLL;
	__u32 d[2] = {};
	bpf_probe_read_user(d, n * 4 <= 4 ? 4 : 8, (const void *)(obj + 24));
	__s64 v = (__s64)(d[0] & 0x3fffffff);
	if (n == 2)
		v |= (__s64)(d[1] & 0x3fffffff) << 30;
	return neg ? -v : v;
}

static __always_inline __u64 py_convert(const struct insa_py_layout *L, __u64 obj, __u8 conv)
{
	if (!obj || !conv)
		return 0;
	__u64 type = rd64(obj + 8);
	__u64 flags = rd64(type + 168);
	if (conv == INSA_PY_INT)
		return (flags & PY_TPFLAGS_LONG) ? (__u64)py_long(L, obj) : 0;
	if (conv == INSA_PY_LEN) /* str length, ob_size, ma_used: all at +16 */
		return (flags & (PY_TPFLAGS_UNICODE | PY_TPFLAGS_BYTES | PY_TPFLAGS_LIST | PY_TPFLAGS_TUPLE |
				 PY_TPFLAGS_DICT)) ? rd64(obj + 16) : 0;
	if (conv == INSA_PY_STR && (flags & PY_TPFLAGS_UNICODE)) {
		__u64 len;
		return py_str(L, obj, &len);
	}
	return 0;
}

/* Does target t name the code whose qualname and file tail are in s? A global
 * function: verified once, whatever the number of targets. */
__noinline int py_target_matches(const struct insa_py_target *t, const struct py_scratch *s, __u32 qlen, __u32 flen,
				 __u32 tgid)
{
	if (!t || !s)
		return 0;
	if (t->tgid && t->tgid != tgid)
		return 0;
	if (t->qual_len != qlen || t->file_len > flen || qlen >= INSA_PY_NAME || flen >= INSA_PY_NAME)
		return 0;
	for (int i = 0; i < INSA_PY_NAME; i++) {
		if (i >= qlen)
			break;
		if (t->qualname[i] != s->qual[i])
			return 0;
	}
	__u32 start = flen - t->file_len;
	for (int i = 0; i < INSA_PY_NAME; i++) {
		if (i >= t->file_len)
			break;
		if (t->file[i] != s->file[(start + i) & (INSA_PY_NAME - 1)])
			return 0;
	}
	/* a whole path component: "worker.py" does not match "myworker.py" */
	if (start > 0 && s->file[(start - 1) & (INSA_PY_NAME - 1)] != '/')
		return 0;
	return 1;
}

/* Index of the target that names this code object, or -1. */
static __always_inline int py_match(const struct insa_py_layout *L, __u64 code, __u32 tgid)
{
	__u32 zero = 0;
	struct py_scratch *s = bpf_map_lookup_elem(&py_scratch_map, &zero);
	if (!s)
		return -1;
	__u64 qlen = 0, flen = 0;
	__u64 q = py_str(L, rd64(code + L->code_qualname), &qlen);
	__u64 f = py_str(L, rd64(code + L->code_filename), &flen);
	if (!q || !f || qlen >= INSA_PY_NAME)
		return -1;
	if (bpf_probe_read_user_str(s->qual, sizeof(s->qual), (const void *)q) < 0)
		return -1;
	/* the last INSA_PY_NAME - 1 bytes of the file name */
	__u64 skip = flen > INSA_PY_NAME - 1 ? flen - (INSA_PY_NAME - 1) : 0;
	if (bpf_probe_read_user_str(s->file, sizeof(s->file), (const void *)(f + skip)) < 0)
		return -1;
	flen -= skip;
	__u32 *allowed = bpf_map_lookup_elem(&py_pid_targets, &tgid);
	__u32 mask = allowed ? *allowed : ~0u;
	for (__u32 i = 0; i < INSA_MAX_PY_TARGETS; i++) {
		if (i >= py_ntargets)
			break;
		if (!(mask & (1u << i)))
			continue;
		const struct insa_py_target *t = bpf_map_lookup_elem(&py_targets, &i);
		if (py_target_matches(t, s, qlen, flen, tgid))
			return i;
	}
	return -1;
}

/* The target that names this frame's code object (decided once per process and
 * code object, then cached), or -1. */
static __always_inline int py_lookup(const struct insa_py_layout *L, __u64 code, __u32 tgid)
{
	struct insa_py_code_key ck = { .tgid = tgid, .code = code };
	__u64 qn = rd64(code + L->code_qualname);
	struct insa_py_code_val *cv = bpf_map_lookup_elem(&py_codes, &ck);
	if (cv && cv->qualname == qn)
		return cv->target;
	int ti = py_match(L, code, tgid);
	struct insa_py_code_val nv = { .target = ti, .qualname = qn };
	bpf_map_update_elem(&py_codes, &ck, &nv, BPF_ANY);
	return ti;
}

/* Opens a call of target tix at frame: parameter values, entry actions, the record. */
static __always_inline int py_open(const struct insa_py_layout *L, const struct insa_py_target *t, __u32 tix,
				   __u64 frame, __u64 code, __u32 tgid, __u32 per_call)
{
	__u32 id = t->spec;
	const struct insa_probe_spec *spec = bpf_map_lookup_elem(&specs, &id);
	if (!spec)
		return -1;
	struct insa_py_call_key key = { .tgid = tgid, .frame = frame };
	__u64 now = bpf_ktime_get_ns();
	struct insa_py_call call = { .ts = now, .target = tix, .per_call = per_call, .code = code };
	for (int i = 0; i < INSA_MAX_ARGS; i++) {
		const struct insa_py_slot *sl = &t->slots[i];
		if (!sl->conv)
			continue;
		__u64 obj = rd64(frame + L->frame_localsplus + 8 * (__u64)sl->local);
		call.args[i] = py_convert(L, obj, sl->conv);
	}
	STAT_INC(id, hits);
	struct call_ctx c = { .now = now, .tgid = tgid, .probe = id };
	__builtin_memcpy(c.args, call.args, sizeof(c.args));
	run_actions(spec, PH_ENTRY, &c);
	call.ts = bpf_ktime_get_ns(); /* exclude our own entry work from the duration */
	if (bpf_map_update_elem(&py_calls, &key, &call, BPF_ANY)) {
		STAT_INC(id, overflow);
		return -1;
	}
	return 0;
}

SEC("uprobe")
int insa_py_entry(struct pt_regs *ctx)
{
	__u32 li = bpf_get_attach_cookie(ctx);
	const struct insa_py_layout *L = bpf_map_lookup_elem(&py_layouts, &li);
	if (!L)
		return 0;
	__u64 tstate = ctx->di, frame = ctx->si;
	__u64 code = rd64(frame + L->frame_code);
	if (!code)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	int ti = py_lookup(L, code, tgid);
	if (ti < 0)
		return 0;
	__u32 tix = ti;
	const struct insa_py_target *t = bpf_map_lookup_elem(&py_targets, &tix);
	if (!t || t->per_call)
		return 0;

	__u8 owner = 0;
	bpf_probe_read_user(&owner, 1, (const void *)(frame + L->frame_owner));
	int gen = owner == PY_OWNED_BY_GENERATOR;
	int first = 1;
	if (gen) {
		__u64 ip = rd64(frame + L->frame_instr);
		if (L->instr_is_next)
			ip -= 2;
		__u8 op = 0;
		bpf_probe_read_user(&op, 1, (const void *)ip);
		first = op == L->op_return_generator;
	}
	struct insa_py_call_key key = { .tgid = tgid, .frame = frame };
	if (first) {
		if (py_open(L, t, tix, frame, code, tgid, 0))
			return 0;
	} else if (!bpf_map_lookup_elem(&py_calls, &key)) {
		return 0; /* a coroutine that started before we attached: not ours to count */
	}
	__u32 id = t->spec;
	struct insa_py_stack *st = bpf_task_storage_get(&py_stacks, bpf_get_current_task_btf(), 0,
							BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st)
		return 0;
	__u32 d = st->depth;
	if (d >= INSA_PY_STACK) {
		STAT_INC(id, overflow);
		return 0;
	}
	struct insa_py_open *o = &st->e[d & (INSA_PY_STACK - 1)];
	o->sp = ctx->sp;
	o->frame = frame;
	o->tstate = tstate;
	o->target = tix;
	o->gen = gen;
	/* the entry probe's ip is _PyEval_EvalFrameDefault as mapped in this process */
	o->none = ctx->ip + L->none_delta;
	st->depth = d + 1;
	return 0;
}

/* FNV-1a of the exception type name after its last '.', never 0. */
static __always_inline __u32 py_name_hash(const char *name)
{
	__u32 h = 2166136261u;
	for (int i = 0; i < INSA_PY_NAME; i++) {
		char ch = name[i];
		if (!ch)
			break;
		if (ch == '.') {
			h = 2166136261u;
			continue;
		}
		h ^= (__u8)ch;
		h *= 16777619u;
	}
	return h ? h : 1;
}

/* Closes the call recorded for frame: `exc` is the pending exception (type on 3.11,
 * instance after; 1 when unknown), 0 when the call returned. */
static __always_inline int py_finish(const struct insa_py_layout *L, __u32 tgid, __u64 frame, __u32 per_call,
				     int has_ret, __u64 ret, __u64 none, __u64 exc)
{
	struct insa_py_call_key key = { .tgid = tgid, .frame = frame };
	struct insa_py_call *rec = bpf_map_lookup_elem(&py_calls, &key);
	if (!rec || rec->per_call != per_call)
		return 0;
	struct insa_py_call call = *rec;
	bpf_map_delete_elem(&py_calls, &key);
	const struct insa_py_target *t = bpf_map_lookup_elem(&py_targets, &call.target);
	if (!t)
		return 0;
	__u32 id = t->spec;
	const struct insa_probe_spec *spec = bpf_map_lookup_elem(&specs, &id);
	if (!spec)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct call_ctx c = { .now = now, .tgid = tgid, .probe = id, .duration = now - call.ts };
	__builtin_memcpy(c.args, call.args, sizeof(c.args));
	if (exc) {
		if (exc != 1 && !L->exc_is_type)
			exc = rd64(exc + 8);
		c.exc_name = exc != 1 ? rd64(exc + 24) : 0;
		c.no_ret = 1;
		c.exc_hash = 1;
		__u32 zero = 0;
		struct py_scratch *s = bpf_map_lookup_elem(&py_scratch_map, &zero);
		if (s && c.exc_name) {
			__builtin_memset(s->name, 0, sizeof(s->name));
			bpf_probe_read_user_str(s->name, sizeof(s->name), (const void *)c.exc_name);
			c.exc_hash = py_name_hash(s->name);
		}
		STAT_INC(id, exceptions);
	} else {
		if (has_ret) {
			c.ret = (__s64)py_convert(L, ret, t->ret_conv);
			c.ret_none = ret == none;
		} else {
			c.no_ret = 1; /* the per-call mechanism does not see the return value */
		}
		STAT_INC(id, completed);
	}
	c.status = classify(spec, &c);
	run_actions(spec, PH_EXIT, &c);
	return 0;
}

SEC("uprobe")
int insa_py_exit(struct pt_regs *ctx)
{
	struct insa_py_stack *st = bpf_task_storage_get(&py_stacks, bpf_get_current_task_btf(), 0, 0);
	if (!st)
		return 0;
	__u64 sp = ctx->sp - 8; /* the return address has been popped */
	struct insa_py_open o = {};
	int found = 0;
	for (int i = 0; i < INSA_PY_STACK; i++) {
		__u32 d = st->depth;
		if (d == 0 || d > INSA_PY_STACK)
			break;
		struct insa_py_open *top = &st->e[(d - 1) & (INSA_PY_STACK - 1)];
		if (top->sp > sp)
			break; /* an outer frame: this return is not a matched one */
		st->depth = d - 1;
		if (top->sp == sp) {
			o = *top;
			found = 1;
			break;
		}
		/* below: its return was never reported (uretprobe depth limit) */
	}
	if (!found)
		return 0;
	__u32 li = bpf_get_attach_cookie(ctx);
	const struct insa_py_layout *L = bpf_map_lookup_elem(&py_layouts, &li);
	if (!L)
		return 0;
	__u64 ret = ctx->ax;
	if (ret && o.gen) {
		__s8 state = 0;
		bpf_probe_read_user(&state, 1, (const void *)(o.frame - L->gen_iframe + L->gen_state));
		if (state < 0)
			return 0; /* suspended at a yield or await: the call goes on */
	}
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	/* NULL: left by an exception, which the thread state holds */
	__u64 exc = ret ? 0 : rd64(o.tstate + L->tstate_exc);
	py_finish(L, tgid, o.frame, 0, ret ? 1 : 0, ret, o.none, ret ? 0 : (exc ? exc : 1));
	return 0;
}

/* ---------------------------------------------------------------------------
 * Python, per-call mechanism: every frame start (a uprobe in the RESUME opcode
 * handlers) and every frame end (the function that clears a frame). Sees plain
 * calls that CPython 3.11+ runs inline, at a cost on every Python call of the
 * processes it is attached to (it is attached per process).
 * -------------------------------------------------------------------------*/

/* This thread's PyThreadState: the GIL holder (3.11), else found once in the
 * interpreter's thread list by native thread id and kept in task storage. */
static __always_inline __u64 py_tstate(const struct insa_py_layout *L, __u64 bias, struct insa_py_stack *st)
{
	__u64 rt = L->runtime + bias;
	if (L->gilstate_tstate)
		return rd64(rt + L->gilstate_tstate);
	if (st && st->tstate)
		return st->tstate;
	__u64 interp = rd64(rt + L->interp_head);
	__u64 ts = rd64(interp + L->threads_head);
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	for (int i = 0; i < 64; i++) {
		if (!ts)
			break;
		if ((__u32)rd64(ts + L->tstate_tid) == tid) {
			if (st)
				st->tstate = ts;
			return ts;
		}
		ts = rd64(ts + L->tstate_next);
	}
	return 0;
}

SEC("uprobe")
int insa_py_resume(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 li = cookie & 0xff;
	const struct insa_py_layout *L = bpf_map_lookup_elem(&py_layouts, &li);
	if (!L)
		return 0;
	__u64 bias = ctx->ip - L->site_vaddr[(cookie >> 8) & 1];
	struct insa_py_stack *st = bpf_task_storage_get(&py_stacks, bpf_get_current_task_btf(), 0,
							BPF_LOCAL_STORAGE_GET_F_CREATE);
	__u64 ts = py_tstate(L, bias, st);
	if (!ts)
		return 0;
	__u64 frame = rd64(ts + L->tstate_frame);
	if (L->cframe_frame >= 0)
		frame = rd64(frame + L->cframe_frame);
	if (!frame)
		return 0;
	__u64 code = rd64(frame + L->frame_code);
	if (!code)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	int ti = py_lookup(L, code, tgid);
	if (ti < 0)
		return 0;
	__u32 tix = ti;
	const struct insa_py_target *t = bpf_map_lookup_elem(&py_targets, &tix);
	if (!t || !t->per_call)
		return 0;
	/* A frame's start, or a generator resuming? The handler has stored the RESUME
	 * instruction's address: its oparg is 0 at a start. */
	__u8 insn[2] = {};
	bpf_probe_read_user(insn, 2, (const void *)rd64(frame + L->frame_instr));
	int first;
	if (insn[0] == L->op_resume[0] || insn[0] == L->op_resume[1])
		first = (insn[1] & 3) == 0;
	else
		first = insn[0] != L->op_yield; /* not stored yet: the previous instruction */
	if (!first)
		return 0;
	struct insa_py_call_key key = { .tgid = tgid, .frame = frame };
	struct insa_py_call *rec = bpf_map_lookup_elem(&py_calls, &key);
	if (rec && rec->code == code && rec->per_call)
		return 0; /* the same start seen at a second RESUME site (3.13 deopt) */
	py_open(L, t, tix, frame, code, tgid, 1);
	return 0;
}

SEC("uprobe")
int insa_py_clear(struct pt_regs *ctx)
{
	__u64 frame = ctx->di;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct insa_py_call_key key = { .tgid = tgid, .frame = frame };
	struct insa_py_call *rec = bpf_map_lookup_elem(&py_calls, &key);
	if (!rec || !rec->per_call)
		return 0;
	__u32 li = bpf_get_attach_cookie(ctx) & 0xff;
	const struct insa_py_layout *L = bpf_map_lookup_elem(&py_layouts, &li);
	if (!L)
		return 0;
	struct insa_py_stack *st = bpf_task_storage_get(&py_stacks, bpf_get_current_task_btf(), 0, 0);
	__u64 ts = py_tstate(L, ctx->ip - L->clear_vaddr, st);
	__u64 exc = ts ? rd64(ts + L->tstate_exc) : 0;
	py_finish(L, tgid, frame, 1, 0, 0, 0, exc);
	return 0;
}

/* A Python process ended (killed, crashed, exited with calls in flight): its open calls
 * (functions mid-call, suspended coroutines) are abandoned, so in-flight gauges return
 * to the truth. Runs once per process exit, only when there are Python probes. */
struct py_reap_ctx {
	__u32 tgid;
	__u32 pad;
	__u64 now;
};

static long py_reap_one(struct bpf_map *map, struct insa_py_call_key *key, struct insa_py_call *call,
			struct py_reap_ctx *rc)
{
	if (key->tgid != rc->tgid)
		return 0;
	const struct insa_py_target *t = bpf_map_lookup_elem(&py_targets, &call->target);
	if (t) {
		__u32 id = t->spec;
		const struct insa_probe_spec *spec = bpf_map_lookup_elem(&specs, &id);
		if (spec) {
			struct call_ctx c = { .now = rc->now, .tgid = rc->tgid, .probe = id, .duration = rc->now - call->ts };
			__builtin_memcpy(c.args, call->args, sizeof(c.args));
			STAT_INC(id, abandoned);
			int ph = PH_ABANDON;
			if (spec->flags & INSA_PROBE_ABANDON_STATUS) { /* counted in user metrics too */
				c.status = spec->abandoned_status;
				c.no_ret = NO_RET_NO_DURATION;
				ph = PH_EXIT;
			}
			run_actions(spec, ph, &c);
		}
	}
	bpf_map_delete_elem(map, key);
	return 0;
}

__noinline int py_reap_process(__u32 tgid)
{
	if (!py_ntargets)
		return 0;
	struct py_reap_ctx rc = { .tgid = tgid, .now = bpf_ktime_get_ns() };
	bpf_for_each_map_elem(&py_calls, py_reap_one, &rc, 0);
	return 0;
}
