/*
 * A worker std::thread parses a configuration line and throws its own exception type,
 * (anonymous namespace)::config_error, which escapes the thread's function: the thread
 * cannot pass it on, so std::terminate runs ("terminate called after throwing an
 * instance of '(anonymous namespace)::config_error'", what(): "bad value for
 * 'workers'"), abort(): SIGABRT in the worker thread while main waits in join().
 *
 * Triage must conclude: app-abort, kind cxx-uncaught-(anonymous namespace)::config_error,
 * title "uncaught (anonymous namespace)::config_error in (anonymous
 * namespace)::parse_line: bad value for 'workers'", guilty frames
 * (anonymous namespace)::parse_line | (anonymous namespace)::load (the std::thread
 * plumbing below them skipped), in the thread that is not main.
 */
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

struct config_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

int __attribute__((noinline)) parse_line(const std::string &line)
{
    auto equals = line.find('=');
    std::string key = line.substr(0, equals), value = line.substr(equals + 1);
    if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos)
        throw config_error("bad value for '" + key + "'");
    return std::stoi(value);
}

void __attribute__((noinline)) load(const char *text, int *workers)
{
    *workers = parse_line(text);
}

} // namespace

int main()
{
    std::printf("badconfig: loading\n");
    std::fflush(stdout);
    int workers = 0;
    std::thread loader(load, "workers=four", &workers);
    loader.join();
    std::printf("badconfig FAILED: %d workers\n", workers);
    return 1;
}
