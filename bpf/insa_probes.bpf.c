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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384); /* resized by userspace before load */
	__type(key, struct insa_key);
	__type(value, struct insa_hist);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct insa_key);
	__type(value, __s64);
} gauges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
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
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

static const struct insa_hist zero_hist;

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
};

/* PH_EXCEPTION runs exit actions with the probe's exception status; PH_TAIL is
 * an exit at a tail jmp, where rax is not the return value (no $ret). */
enum phase { PH_ENTRY, PH_EXIT, PH_ABANDON, PH_EXCEPTION, PH_TAIL };

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

static __always_inline __u32 classify(const struct insa_probe_spec *spec, const struct call_ctx *c)
{
	for (int i = 0; i < INSA_MAX_RULES; i++) {
		if (i >= spec->nrules)
			break;
		const struct insa_rule *r = &spec->rules[i];
		if (c->no_ret && (r->src & ~INSA_SRC_I32) == INSA_SRC_RET)
			continue; /* tail-jmp exit: no return value to test */
		__s64 v = eval_src(r->src, r->arg, 0, c);
		if (cmp_ok(r->cmp, v, r->value))
			return r->status;
	}
	return spec->default_status;
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
		if (l->src == INSA_SRC_ARG_STR) {
			__u32 len = l->len;
			if (len == 0 || len > INSA_STR_MAX)
				continue;
			__u64 p = arg_at(c, l->arg);
			if (!p)
				continue;
			if (s->str_ptr != p || s->str_now != c->now || s->str_len != len) {
				for (int k = 0; k < INSA_STR_MAX / 8; k++)
					s->str[k] = 0;
				bpf_probe_read_user_str(s->str, len, (const void *)p);
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

/* Returns -1 when the series is new and the map is full: the update is lost (counted). */
static __always_inline int observe(const struct insa_key *key, const struct insa_action *a, __s64 v, int bucketed)
{
	struct insa_hist *h = bpf_map_lookup_elem(&counters, key);
	if (!h) {
		bpf_map_update_elem(&counters, key, &zero_hist, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&counters, key);
		if (!h)
			return -1;
	}
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum, v);
	if (!bucketed)
		return 0;
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

static __always_inline int gauge_apply(const struct insa_key *key, __u8 op, __s64 v)
{
	__s64 *g = bpf_map_lookup_elem(&gauges, key);
	if (!g) {
		__s64 init = 0;
		bpf_map_update_elem(&gauges, key, &init, BPF_NOEXIST);
		g = bpf_map_lookup_elem(&gauges, key);
		if (!g)
			return -1;
	}
	if (op == INSA_OP_GAUGE_SET)
		*g = v;
	else
		__sync_fetch_and_add(g, op == INSA_OP_GAUGE_SUB ? -v : v);
	return 0;
}

static __always_inline int uses_ret(const struct insa_action *a)
{
	if ((a->value_src & ~INSA_SRC_I32) == INSA_SRC_RET || (a->cond.cmp && (a->cond.src & ~INSA_SRC_I32) == INSA_SRC_RET))
		return 1;
	for (int j = 0; j < INSA_MAX_LABELS; j++) {
		if (j >= a->nlabels)
			break;
		if ((a->labels[j].src & ~INSA_SRC_I32) == INSA_SRC_RET)
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
		if (gauge_apply(&s->key, INSA_OP_GAUGE_ADD, ph == PH_ENTRY ? 1 : -1))
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
		bpf_map_update_elem(&spans, &sk, &c->now, BPF_ANY);
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
		lost = observe(&s->key, a, v, 0);
	else if (op == INSA_OP_OBSERVE)
		lost = observe(&s->key, a, v, 1);
	else
		lost = gauge_apply(&s->key, op, v);
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

/* Every exec on the host: userspace keeps those of worker binaries, so a worker
 * that lives shorter than the /proc scan still counts as started (and restarted). */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(insa_task_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct insa_exec_event *e = bpf_ringbuf_reserve(&exits, sizeof(*e), 0);
	if (!e)
		return 0;
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
	struct insa_exit_event *e = bpf_ringbuf_reserve(&exits, sizeof(*e), 0);
	if (!e)
		return 0;
	e->tgid = tgid;
	e->exit_code = BPF_CORE_READ(cur, exit_code);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
