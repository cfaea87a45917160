// SPDX-License-Identifier: Apache-2.0
#include "common/regular_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace insa {

RegularFile read_regular_file(const std::string& path, uint64_t max_bytes) {
  RegularFile r;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    r.status = RegularFile::Status::CannotOpen;
    r.err = errno;
    return r;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    r.status = RegularFile::Status::CannotOpen;
    r.err = errno;
  } else if (!S_ISREG(st.st_mode)) {
    r.status = RegularFile::Status::NotRegular;
    r.mode = st.st_mode;
  } else if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    r.status = RegularFile::Status::TooBig;
    r.size = static_cast<uint64_t>(st.st_size);
  } else {
    char buf[65536];
    while (r.text.size() <= max_bytes) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        r.status = RegularFile::Status::ReadError;
        r.err = errno;
        r.text.clear();
        break;
      }
      if (n == 0) break;
      r.text.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return r;
}

}  // namespace insa
