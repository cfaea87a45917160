// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's floor (tests/bench): empty programs attached where the
 * exporter attaches its request probe, the entry site and every return site.
 * What remains is the price of the uprobe mechanism itself (trap or trampoline,
 * emulation or single-step, running a BPF program), which no exporter built on
 * uprobes can go below.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("uprobe")
int floor_entry(struct pt_regs *ctx)
{
	return 0;
}

SEC("uprobe")
int floor_exit(struct pt_regs *ctx)
{
	return 0;
}
