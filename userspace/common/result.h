// SPDX-License-Identifier: Apache-2.0
/// @file The one error model of insa-exporter: Result<T> for everything that can
/// fail at run time. An Error carries a one-line message (what, where, what to do)
/// and a positive errno read right after the failing call (0 when not a syscall).
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace insa {

/// A failure a caller can report or act on.
struct Error {
  std::string message;  ///< one line: what failed, where, and what to do
  int err = 0;          ///< positive errno, 0 when not from a syscall

  /// Builds an error from the current errno, appending strerror.
  static Error from_errno(std::string what, int e = errno) {
    if (e < 0) e = -e;
    return Error{std::move(what) + ": " + std::strerror(e), e};
  }
};

/// Value or Error. Deliberately small: ok(), value(), error(), operator->.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}          // NOLINT(google-explicit-constructor)
  Result(Error e) : v_(std::move(e)) {}      // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Error& error() const { return std::get<1>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Error> v_;
};

/// Result of an operation with no value.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : e_(std::move(e)), failed_(true) {}  // NOLINT
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return e_; }

 private:
  Error e_;
  bool failed_ = false;
};

/// Exception used only for fatal start-up errors; caught in main and printed as one line.
struct FatalError {
  Error error;
};

}  // namespace insa
