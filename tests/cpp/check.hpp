/*
 * check.hpp - the checks of the C++ test programs (wrapper.cpp, cluster_sentinel.cpp,
 * tls.cpp): one line per check ("ok ..." or "FAIL ... (file:line)"), counted, so that the
 * program can exit non-zero when any failed. Found next to the including source (the
 * programs are built with -I include only).
 */
#ifndef REDISPOOL_TESTS_CPP_CHECK_HPP
#define REDISPOOL_TESTS_CPP_CHECK_HPP

#include "redispool.hpp"

#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>

inline int checks = 0;
inline int failures = 0;

inline void check(bool ok, const char *what, const char *file, int line) {
    checks++;
    if (ok) {
        std::printf("ok   %s\n", what);
    } else {
        failures++;
        const char *base = std::strrchr(file, '/');
        std::printf("FAIL %s (%s:%d)\n", what, base ? base + 1 : file, line);
    }
    std::fflush(stdout);
}

#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)

/// Runs f and returns the redispool::Error it threw, if any.
template <class F> std::optional<redispool::Error> thrown(F f) {
    try {
        f();
    } catch (const redispool::Error &e) {
        std::printf("     (threw code %d %s: %s)\n", static_cast<int>(e.code()), e.code_str(),
                    e.what());
        return e;
    }
    return std::nullopt;
}

inline void section(const char *name) { std::printf("== %s\n", name); }

/// The last line ("all N checks passed" or "F of N checks failed") and the exit status.
inline int check_summary();

/// Runs the checks in `f`; an exception none of them caught fails the program (1),
/// else its exit status is check_summary()'s.
template <class F> int run_checks(F f) {
    try {
        f();
    } catch (const redispool::Error &e) {
        std::printf("FAIL unexpected redispool::Error code %d: %s\n", static_cast<int>(e.code()),
                    e.what());
        return 1;
    } catch (const std::exception &e) {
        std::printf("FAIL unexpected exception: %s\n", e.what());
        return 1;
    }
    return check_summary();
}

inline int check_summary() {
    if (failures != 0) {
        std::printf("%d of %d checks failed\n", failures, checks);
        return 1;
    }
    std::printf("all %d checks passed\n", checks);
    return 0;
}

#endif
