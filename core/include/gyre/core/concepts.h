// Concepts for user functions. A lambda of the wrong shape fails here, at the call to map /
// filter / key_by ..., with the concept's name in the error, not deep inside the runtime.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "gyre/core/batch.h"
#include "gyre/core/hash.h"

namespace gyre {

struct SourceContext;

// A record: a plain C++ value that can be copied between partitions.
template <class T>
concept Record = std::is_object_v<T> && std::copy_constructible<T> && std::is_copy_assignable_v<T> &&
                 std::destructible<T>;

// T map(const In&)
template <class F, class In>
concept MapFunction = std::copy_constructible<F> && std::invocable<F&, const In&> &&
                      Record<std::remove_cvref_t<std::invoke_result_t<F&, const In&>>>;
template <class F, class In>
using MapResult = std::remove_cvref_t<std::invoke_result_t<F&, const In&>>;

// bool filter(const T&)
template <class F, class T>
concept FilterFunction = std::copy_constructible<F> && std::predicate<F&, const T&>;

// void flat_map(const In&, Emit<Out>&)
template <class F, class In, class Out>
concept FlatMapFunction = std::copy_constructible<F> && std::invocable<F&, const In&, Emit<Out>&>;

// K key(const T&), K a Key (hashable, equality comparable)
template <class F, class T>
concept KeyFunction = std::copy_constructible<F> && std::invocable<const F&, const T&> &&
                      Key<std::remove_cvref_t<std::invoke_result_t<const F&, const T&>>>;
template <class F, class T>
using KeyOf = std::remove_cvref_t<std::invoke_result_t<const F&, const T&>>;

// T reduce(const T&, const T&): associative; applied in arrival order within a partition.
template <class F, class T>
concept ReduceFunction = std::copy_constructible<F> && std::invocable<F&, const T&, const T&> &&
                         std::convertible_to<std::invoke_result_t<F&, const T&, const T&>, T>;

// void add(Acc&, const T&)
template <class F, class Acc, class T>
concept AggregateFunction = std::copy_constructible<F> && std::invocable<F&, Acc&, const T&>;

// Out join(const L&, const R&)
template <class F, class L, class R>
concept JoinFunction = std::copy_constructible<F> && std::invocable<F&, const L&, const R&> &&
                       Record<std::remove_cvref_t<std::invoke_result_t<F&, const L&, const R&>>>;

// void co_group(const K&, std::span<const L>, std::span<const R>, Emit<Out>&)
template <class F, class K, class L, class R, class Out>
concept CoGroupFunction =
    std::copy_constructible<F> &&
    std::invocable<F&, const K&, std::span<const L>, std::span<const R>, Emit<Out>&>;

// void sink(const T&) or void sink(const T&, int partition)
template <class F, class T>
concept SinkFunction = std::copy_constructible<F> &&
                       (std::invocable<F&, const T&> || std::invocable<F&, const T&, int>);

// T generate(std::uint64_t index)
template <class F>
concept GeneratorFunction = std::copy_constructible<F> && std::invocable<F&, std::uint64_t> &&
                            Record<std::remove_cvref_t<std::invoke_result_t<F&, std::uint64_t>>>;

// std::optional<T> poll(SourceContext&): nullopt = nothing now (the source is polled again).
template <class F, class T>
concept UnboundedSourceFunction =
    std::copy_constructible<F> && std::invocable<F&, SourceContext&> &&
    std::convertible_to<std::invoke_result_t<F&, SourceContext&>, std::optional<T>>;

// std::string format(const T&)
template <class F, class T>
concept FormatFunction = std::copy_constructible<F> && std::invocable<F&, const T&> &&
                         std::convertible_to<std::invoke_result_t<F&, const T&>, std::string>;

// What an unbounded source function sees.
struct SourceContext {
  int partition = 0;
  int parallelism = 1;
  std::uint64_t emitted = 0;  // records this partition has emitted so far
};

}  // namespace gyre
