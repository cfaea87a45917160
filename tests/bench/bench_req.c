// SPDX-License-Identifier: Apache-2.0
/* The probed request function. Compiled once per variant (BENCH_REQ_NAME) with
 * different flags so only the entry instruction differs; see CMakeLists.txt.
 * At -O2 the body starts by loading the global `bench_ctx` rip-relative, then
 * tests it and branches: the `je` is the first instruction the kernel emulates,
 * the cheaper entry site the exporter should pick on req_rip. */
#include "bench_req.h"

__attribute__((noinline)) long BENCH_REQ_NAME(long id, long size)
{
	struct bench_ctx *c = bench_ctx;
	if (!c)
		return -1;
	c->hits++;
	c->mix = c->mix * 31 + (unsigned long)size;
	return (id & 15) == 15 ? -2 : size; /* every 16th call is an error */
}
