/*
 * std::vector::at throws std::out_of_range in lookup (an index one past the end) and
 * nothing catches it: libstdc++'s terminate handler prints "terminate called after
 * throwing an instance of 'std::out_of_range'" and what(), then abort(): SIGABRT.
 *
 * Triage must conclude: app-abort, kind cxx-uncaught-std::out_of_range, title "uncaught std::out_of_range in lookup:
 * vector::_M_range_check: __n (which is 3) >= this->size() (which is 3)", guilty frames
 * lookup | main (libstdc++'s terminate plumbing, __cxa_throw and the std:: frames of
 * vector::at skipped).
 */
#include <cstdio>
#include <vector>

static int __attribute__((noinline)) lookup(const std::vector<int> &prices, size_t item)
{
    return prices.at(item);
}

int main(int argc, char **)
{
    std::vector<int> prices{10, 20, 30};
    std::printf("outofrange: looking up item %zu\n", prices.size() + argc - 1);
    std::fflush(stdout);
    std::printf("outofrange FAILED: %d\n", lookup(prices, prices.size() + argc - 1));
    return 1;
}
