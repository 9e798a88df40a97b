// A persistent pool: workers are created once (or on resize) and spin briefly
// between jobs before sleeping, so back-to-back matmuls of a decode step pay
// no thread start-up and almost no wake-up latency.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ryz {

class ThreadPool {
public:
    static ThreadPool& instance();
    ~ThreadPool();

    int size() const { return static_cast<int>(workers_.size()) + 1; }  // the caller counts as one
    void resize(int n);
    // Runs fn(i) for every i in [0, n_tasks); the calling thread takes part. Blocks until done.
    // Calls from several threads are serialised.
    void run(int n_tasks, const std::function<void(int)>& fn);

private:
    ThreadPool();
    using Fn = std::function<void(int)>;
    void stop_workers();
    void worker_loop(uint64_t seen);
    void drain(const Fn& fn);

    std::vector<std::thread> workers_;
    std::mutex run_mutex_;  // one job at a time
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    // The current job. n_tasks_ is written before job_ is published.
    std::atomic<const Fn*> job_{nullptr};
    int n_tasks_ = 0;
    std::atomic<int> next_{0};
    std::atomic<int> done_{0};
    // Workers between reading job_ and finishing with it; run() returns only
    // when this is zero, so no worker can touch a job that has ended.
    std::atomic<int> in_flight_{0};
};

// Splits [0, rows) into contiguous ranges (boundaries on multiples of align), each of at least
// min_rows_per_thread rows, and runs body(r0, r1) on each over the pool. Up to kRangesPerThread ranges a thread,
// taken in turn as threads come free: two cores streaming memory do not finish equal halves at the same time (one
// range each left a thread waiting at every barrier of a decode step: ~15% of it at the 2B4T shape).
constexpr int kRangesPerThread = 4;

template <class F>
void parallel_rows(int64_t rows, int64_t min_rows_per_thread, F&& body, int64_t align = 8) {
    ThreadPool& pool = ThreadPool::instance();
    int nt = pool.size();
    const int64_t max_useful = rows / min_rows_per_thread;
    if (max_useful < nt) nt = max_useful < 1 ? 1 : static_cast<int>(max_useful);
    if (nt == 1) {
        body(int64_t(0), rows);
        return;
    }
    const int64_t ranges = std::min<int64_t>(int64_t(nt) * kRangesPerThread, std::max<int64_t>(nt, max_useful));
    const int64_t per = ((rows + ranges - 1) / ranges + align - 1) / align * align;
    nt = static_cast<int>((rows + per - 1) / per);
    pool.run(nt, [&](int i) {
        const int64_t r0 = i * per, r1 = r0 + per < rows ? r0 + per : rows;
        if (r0 < r1) body(r0, r1);
    });
}

}  // namespace ryz
