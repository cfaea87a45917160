// SPDX-License-Identifier: Apache-2.0
/// @file Reading a whole file a user named (a config, a Python source) without ever
/// blocking on a FIFO or a device, and with a size bound. Callers word the errors.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace insa {

struct RegularFile {
  enum class Status { Ok, CannotOpen, NotRegular, TooBig, ReadError };
  Status status = Status::Ok;
  int err = 0;        ///< errno, for CannotOpen and ReadError
  mode_t mode = 0;    ///< the file's type, for NotRegular
  uint64_t size = 0;  ///< its size, for TooBig
  /// Ok: the contents (longer than max_bytes only when the file grew while being read).
  std::string text;
};

/// Opens `path` with O_NONBLOCK (a FIFO would otherwise wait for a writer forever),
/// refuses anything but a regular file and a file larger than `max_bytes`, and reads it
/// (stopping once past `max_bytes`).
RegularFile read_regular_file(const std::string& path, uint64_t max_bytes);

}  // namespace insa
