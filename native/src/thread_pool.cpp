#include "thread_pool.h"

#include <chrono>

#if defined(RYZ_X86)
#include <immintrin.h>
#define RYZ_PAUSE() _mm_pause()
#else
#define RYZ_PAUSE() std::this_thread::yield()
#endif

namespace ryz {

// How long an idle worker spins before it sleeps: a decode step issues its
// matmuls microseconds apart, while an idle editor should cost no CPU.
static constexpr auto kSpin = std::chrono::microseconds(2000);

static int default_threads() {
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool& ThreadPool::instance() {
    static ThreadPool pool;
    return pool;
}

ThreadPool::ThreadPool() { resize(default_threads()); }

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
    {
        std::lock_guard<std::mutex> lk(sleep_mutex_);
        stop_.store(true);
        generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_.store(false);
}

void ThreadPool::resize(int n) {
    std::lock_guard<std::mutex> run_lk(run_mutex_);
    if (n < 1) n = 1;
    if (n == size()) return;
    stop_workers();
    // Each worker starts from the current generation, so it waits for the next job
    // however late the OS schedules it.
    const uint64_t gen = generation_.load();
    for (int i = 0; i < n - 1; ++i) workers_.emplace_back([this, gen] { worker_loop(gen); });
}

void ThreadPool::drain(const Fn& fn) {
    for (int i = next_.fetch_add(1); i < n_tasks_; i = next_.fetch_add(1)) {
        fn(i);
        done_.fetch_add(1, std::memory_order_release);
    }
}

void ThreadPool::worker_loop(uint64_t seen) {
    for (;;) {
        const auto start = std::chrono::steady_clock::now();
        int spins = 0;
        while (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed)) {
            RYZ_PAUSE();
            if (++spins % 256 == 0 && std::chrono::steady_clock::now() - start > kSpin) {
                std::unique_lock<std::mutex> lk(sleep_mutex_);
                sleepers_.fetch_add(1);
                wake_.wait(lk, [&] { return generation_.load() != seen || stop_.load(); });
                sleepers_.fetch_sub(1);
                break;
            }
        }
        if (stop_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        in_flight_.fetch_add(1);
        const Fn* fn = job_.load();
        if (fn != nullptr && generation_.load() == seen) drain(*fn);
        in_flight_.fetch_sub(1);
    }
}

void ThreadPool::run(int n_tasks, const Fn& fn) {
    if (n_tasks <= 0) return;
    std::lock_guard<std::mutex> run_lk(run_mutex_);
    if (workers_.empty() || n_tasks == 1) {
        for (int i = 0; i < n_tasks; ++i) fn(i);
        return;
    }
    n_tasks_ = n_tasks;
    next_.store(0);
    done_.store(0);
    job_.store(&fn);
    {
        // The generation changes under the sleep mutex, so a worker that is
        // about to sleep either sees it or is already waiting when we notify.
        std::lock_guard<std::mutex> lk(sleep_mutex_);
        generation_.fetch_add(1);
    }
    if (sleepers_.load() > 0) wake_.notify_all();
    drain(fn);
    while (done_.load(std::memory_order_acquire) < n_tasks) RYZ_PAUSE();
    job_.store(nullptr);
    while (in_flight_.load() > 0) RYZ_PAUSE();
}

}  // namespace ryz
