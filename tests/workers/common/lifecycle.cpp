// SPDX-License-Identifier: Apache-2.0
#include "common/lifecycle.h"

#include <cstdio>

namespace insa_demo {

// The bodies only log: the probes see the arguments.
void worker_started(const char* worker_name, const char* worker_type) {
  std::fprintf(stderr, "%s (%s) started\n", worker_name, worker_type);
}
void worker_stopped(const char* worker_name, long exit_code) {
  std::fprintf(stderr, "%s stopping with exit code %ld\n", worker_name, exit_code);
}
void worker_queue_size(const char* worker_name, long size) {
  (void)worker_name;
  INSA_MARKER_BODY(size);
}
void system_info(const char* version, const char* environment, const char* platform) {
  std::fprintf(stderr, "insa demo platform %s %s %s\n", version, environment, platform);
}

}  // namespace insa_demo
