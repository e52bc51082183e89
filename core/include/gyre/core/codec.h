// Codec<T>: how records cross ranks. Trivially copyable records are copied as bytes;
// std::string, std::pair, std::tuple and std::vector of encodable types are encoded field by
// field. Give your own type a specialisation of gyre::Codec with
//   static void encode(const T&, std::string& out);
//   static const char* decode(const char* p, const char* end, T& out);  // returns the new p
// A record type without a codec still runs in one process; a plan that would send it to another
// rank is rejected before any data moves.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "gyre/core/batch.h"
#include "gyre/core/error.h"

namespace gyre {

template <class T, class = void>
struct Codec;

namespace detail {
[[noreturn]] inline void truncated() { throw Error("corrupt message from another rank: record truncated"); }
}  // namespace detail

template <class T>
struct Codec<T, std::enable_if_t<std::is_trivially_copyable_v<T>>> {
  static void encode(const T& v, std::string& out) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static const char* decode(const char* p, const char* end, T& v) {
    if (static_cast<std::size_t>(end - p) < sizeof(T)) detail::truncated();
    std::memcpy(static_cast<void*>(&v), p, sizeof(T));
    return p + sizeof(T);
  }
};

template <>
struct Codec<std::string> {
  static void encode(const std::string& v, std::string& out) {
    Codec<std::uint64_t>::encode(v.size(), out);
    out.append(v);
  }
  static const char* decode(const char* p, const char* end, std::string& v) {
    std::uint64_t n = 0;
    p = Codec<std::uint64_t>::decode(p, end, n);
    if (static_cast<std::uint64_t>(end - p) < n) detail::truncated();
    v.assign(p, static_cast<std::size_t>(n));
    return p + n;
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>, std::enable_if_t<!std::is_trivially_copyable_v<std::pair<A, B>>>> {
  static void encode(const std::pair<A, B>& v, std::string& out) {
    Codec<A>::encode(v.first, out);
    Codec<B>::encode(v.second, out);
  }
  static const char* decode(const char* p, const char* end, std::pair<A, B>& v) {
    p = Codec<A>::decode(p, end, v.first);
    return Codec<B>::decode(p, end, v.second);
  }
};

template <class... Ts>
struct Codec<std::tuple<Ts...>, std::enable_if_t<!std::is_trivially_copyable_v<std::tuple<Ts...>>>> {
  static void encode(const std::tuple<Ts...>& v, std::string& out) {
    std::apply([&](const auto&... xs) { (Codec<std::decay_t<decltype(xs)>>::encode(xs, out), ...); }, v);
  }
  static const char* decode(const char* p, const char* end, std::tuple<Ts...>& v) {
    std::apply([&](auto&... xs) { ((p = Codec<std::decay_t<decltype(xs)>>::decode(p, end, xs)), ...); }, v);
    return p;
  }
};

// A count, then the elements; elements of trivially copyable types as one block of bytes.
template <class T>
struct Codec<std::vector<T>> {
  static void encode(const std::vector<T>& v, std::string& out) {
    Codec<std::uint64_t>::encode(v.size(), out);
    if constexpr (std::is_trivially_copyable_v<T>) {
      out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
    } else {
      for (const T& x : v) Codec<T>::encode(x, out);
    }
  }
  static const char* decode(const char* p, const char* end, std::vector<T>& v) {
    std::uint64_t n = 0;
    p = Codec<std::uint64_t>::decode(p, end, n);
    if constexpr (std::is_trivially_copyable_v<T>) {
      if (static_cast<std::uint64_t>(end - p) / sizeof(T) < n) detail::truncated();
      v.resize(static_cast<std::size_t>(n));
      if (n > 0) std::memcpy(static_cast<void*>(v.data()), p, static_cast<std::size_t>(n) * sizeof(T));
      return p + n * sizeof(T);
    } else {
      v.clear();
      for (std::uint64_t i = 0; i < n; ++i) {
        T x{};
        p = Codec<T>::decode(p, end, x);
        v.push_back(std::move(x));
      }
      return p;
    }
  }
};

// A record type gyre can send to another rank.
template <class T>
concept Encodable = requires(const T& v, std::string& out, const char* p, T& x) {
  Codec<T>::encode(v, out);
  { Codec<T>::decode(p, p, x) } -> std::same_as<const char*>;
};

namespace detail {

// Appends a batch's records to `out`.
template <class T>
void encode_batch(std::span<const T> records, std::string& out) {
  if constexpr (std::is_trivially_copyable_v<T>) {
    out.append(reinterpret_cast<const char*>(records.data()), records.size_bytes());
  } else {
    for (const T& r : records) Codec<T>::encode(r, out);
  }
}

// Decodes `count` records from [p, end).
template <class T>
std::shared_ptr<BatchBase> decode_batch(const char* p, const char* end, std::size_t count) {
  auto b = std::make_shared<Batch<T>>();
  if constexpr (std::is_trivially_copyable_v<T> && std::is_trivially_default_constructible_v<T>) {
    if (static_cast<std::size_t>(end - p) != count * sizeof(T)) truncated();
    b->data.resize(count);
    std::memcpy(static_cast<void*>(b->data.data()), p, count * sizeof(T));
  } else {
    b->data.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      T x{};
      p = Codec<T>::decode(p, end, x);
      b->data.push_back(std::move(x));
    }
    if (p != end) truncated();
  }
  return b;
}

}  // namespace detail
}  // namespace gyre
