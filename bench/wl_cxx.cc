/*
 * wl_cxx - C++ containers: what a C++ program's allocator sees.
 *
 * ROUNDS rounds, one thread, the standard library's own allocation (no
 * custom allocators): each round builds and tears down
 *   a std::map<uint64_t, std::string>  N inserts, N erases at random keys
 *                                      (a node and a string of 8..47 chars
 *                                      each: 80 B + 32..64 B blocks);
 *   a std::unordered_map<std::string, int>  N increments on ~N/2 keys
 *                                      of 27..31 chars (node, key, and
 *                                      the bucket array's regrowth);
 *   a std::vector<std::unique_ptr<Node>>  2N/3 polymorphic nodes, one in
 *                                      three replaced (the vector's own
 *                                      doubling as well);
 *   a std::list<std::shared_ptr<Node>>  N/2 make_shared nodes, half
 *                                      popped from the front as it grows.
 * Every container is dropped at the end of its phase: the blocks of one
 * phase are freed together, and the next phase asks for other sizes.
 * N = 60000 (10000 with --quick), ROUNDS = 6 (3).  Every operator new and
 * delete of libstdc++ goes to the allocator (its operators, if it defines
 * them, else libstdc++'s around malloc).  The checksum of the contents
 * must be the same under every allocator (run.py compares them); ops =
 * the number of container insertions and removals.
 */
extern "C" {
#include "bench_common.h"
}

#include <cstdio>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct Node {
    uint64_t a, b;
    std::string s;
    explicit Node(uint64_t x) : a(x), b(x * 3), s(std::to_string(x)) {}
    virtual ~Node() = default;
    virtual uint64_t value() const { return a ^ (b >> 1) ^ s.size(); }
};

struct Rng {
    rng_t r;
    explicit Rng(uint64_t seed) { rng_seed(&r, seed); }
    uint64_t operator()() { return rng_next(&r); }
};

}  // namespace

int main(int argc, char **argv)
{
    bench_set_name("cxx");
    int quick = bench_quick(argc, argv);
    const int rounds = (int)bench_arg_long(argc, argv, "--rounds", quick ? 3 : 6);
    const long n = bench_arg_long(argc, argv, "--n", quick ? 10000 : 60000);
    Rng rnd(42);
    uint64_t sum = 0, ops = 0;

    double t0 = now_s();
    for (int round = 0; round < rounds; round++) {
        {
            std::map<uint64_t, std::string> m;
            for (long i = 0; i < n; i++) {
                uint64_t k = rnd() % (uint64_t)(n + n / 2);
                m[k] = std::string(8 + rnd() % 40, (char)('a' + k % 26));
            }
            for (long i = 0; i < n; i++)
                m.erase(rnd() % (uint64_t)(n + n / 2));
            for (const auto &kv : m)
                sum += kv.first * 7 + kv.second.size() + (uint64_t)kv.second[0];
            ops += 2 * (uint64_t)n;
        }
        {
            std::unordered_map<std::string, int> u;
            for (long i = 0; i < n; i++)
                u["key-long-enough-for-heap-" + std::to_string(rnd() % (uint64_t)(n / 2))]++;
            for (const auto &kv : u)
                sum += kv.first.size() * (uint64_t)kv.second;
            ops += (uint64_t)n;
        }
        {
            std::vector<std::unique_ptr<Node>> v;
            for (long i = 0; i < 2 * n / 3; i++) {
                v.emplace_back(new Node(rnd()));
                if (rnd() % 3 == 0)
                    v[rnd() % v.size()].reset(new Node((uint64_t)i));
            }
            for (const auto &p : v)
                sum += p->value();
            ops += (uint64_t)v.size();
        }
        {
            std::list<std::shared_ptr<Node>> l;
            for (long i = 0; i < n / 2; i++) {
                l.push_back(std::make_shared<Node>((uint64_t)i));
                if (i % 2)
                    l.pop_front();
            }
            for (const auto &p : l)
                sum += p->value();
            ops += (uint64_t)(n / 2 + n / 4);
        }
    }
    double el = now_s() - t0;
    bench_result(el, ops, "checksum=%016llx", (unsigned long long)sum);
    return 0;
}
