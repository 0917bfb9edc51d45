/*
 * start_workers returns while its std::thread is still joinable (it forgot join()):
 * ~thread calls std::terminate with no exception in flight, libstdc++ prints
 * "terminate called without an active exception" and abort(): SIGABRT.
 *
 * Triage must conclude: app-abort, kind cxx-terminate-without-exception, title
 * "std::terminate without an active exception in start_workers", guilty frames
 * start_workers | main (std::thread::~thread and the terminate plumbing skipped).
 */
#include <chrono>
#include <cstdio>
#include <thread>

static void background_flush()
{
    std::this_thread::sleep_for(std::chrono::seconds(10));
}

static void __attribute__((noinline)) start_workers()
{
    std::thread flusher(background_flush);
    std::printf("joinable: worker started\n");
    std::fflush(stdout);
} /* flusher is destroyed still joinable: the bug */

int main()
{
    start_workers();
    std::printf("joinable FAILED: no terminate\n");
    return 1;
}
