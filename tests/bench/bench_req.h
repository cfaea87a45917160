// SPDX-License-Identifier: Apache-2.0
/* Shared by the request function variants and the bench driver. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

struct bench_ctx {
	long hits;
	unsigned long mix;
};

/* volatile pointer: every call reloads it, so -O2 code starts with a rip-relative mov */
extern struct bench_ctx *volatile bench_ctx;

long req_nop(long id, long size);
long req_push(long id, long size);
long req_rip(long id, long size);

#ifdef __cplusplus
}
#endif
