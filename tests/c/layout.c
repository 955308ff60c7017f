/* Prints the size of every struct the language bindings mirror by hand (the Ruby
 * binding's FFI::Struct layouts), so their tests can check they match the header. */
#include <stdio.h>

#include "redispool.h"

int main(void)
{
    printf("pool_options_t=%zu pool_stats_t=%zu pool_error_t=%zu pool_reply_t=%zu "
           "pool_leak_t=%zu\n",
           sizeof(pool_options_t), sizeof(pool_stats_t), sizeof(pool_error_t),
           sizeof(pool_reply_t), sizeof(pool_leak_t));
    return 0;
}
