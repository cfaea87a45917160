// SPDX-License-Identifier: Apache-2.0
/// @file lifecycle.h
/// Start/stop markers and the local work queue of every platform process (compiled into
/// each binary, so each binary has its own copy of these symbols).
#pragma once

#include "common/observable.h"

namespace insa_demo {

/// Called once when the process is ready (after connecting to the bus).
INSA_OBSERVABLE void worker_started(const char* worker_name, const char* worker_type);
/// Called once just before a clean exit with the exit code the process will return.
INSA_OBSERVABLE void worker_stopped(const char* worker_name, long exit_code);
/// Called with the size of the process's local work queue after every change (and 0 at start).
INSA_OBSERVABLE void worker_queue_size(const char* worker_name, long size);
/// Called once at start of agent_message_bus with the platform's static description.
INSA_OBSERVABLE void system_info(const char* version, const char* environment,
                                 const char* platform);

}  // namespace insa_demo
