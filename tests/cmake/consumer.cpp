// The C++17 wrapper through the CMake target: redispool.hpp comes from the
// target's include directory, the library from its imported location.
//   ./consumer_cpp HOST:PORT
#include <redispool.hpp>

#include <iostream>
#include <string>

int main(int argc, char **argv) {
    if (argc != 2) {
        std::cerr << "usage: consumer_cpp HOST:PORT\n";
        return 2;
    }
    try {
        redispool::Pool pool(std::string("redis://") + argv[1] + "/0?pool_size=2");
        {
            redispool::Conn conn = pool.get();
            conn.command({"SET", "cmake:consumer", "from cmake"});
            std::cout << "GET: " << conn.command({"GET", "cmake:consumer"}).str() << "\n";
        }
        std::cout << "version: " << pool_version() << "\n";
        pool.close();
    } catch (const redispool::Error &e) {
        std::cerr << "redispool: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
