/*
 * A data race: consume_orders checks the shared pointer `current`, works a while, then
 * reads through it again (read_quantity); meanwhile, with no lock, retire_order sets it
 * to NULL for a while and back. Whether a retirement falls between a check and its use
 * depends only on how the two threads' timing lines up: at -smp 2 some runs crash, with
 * status 139 (SIGSEGV, "segmentation fault at 0" in read_quantity, called from
 * consume_orders), and the others print "race: no crash" and exit 0. A triage should
 * blame read_quantity's NULL dereference and, from the two threads' code, the
 * check-then-use of `current` that retire_order races with.
 */
#include <pthread.h>
#include <stdio.h>

struct order {
    long quantity;
};

/*
 * How long each step spins, in loop iterations (about 6 ns each under TCG here). The
 * consumer spends half its time between check and use. The producer starts retiring
 * some fifty consumer rounds after the consumer started, long enough for the two
 * threads' drift to make the phase it meets random; and `current` stays NULL longer than
 * a host or guest time slice, so the odds stay about even when the two vCPUs take turns
 * on a busy host rather than run at once.
 */
#define CHECK_TO_USE 16000      /* consumer: between its check of `current` and its use, ~0.1 ms */
#define AFTER_USE 16000         /* consumer: between a use and its next check */
#define SETTLE 1600000          /* producer: before retiring, ~10 ms */
#define RETIRED 3200000         /* producer: how long `current` stays NULL, ~20 ms */

static struct order the_order = { 1 };
static struct order *volatile current = &the_order;     /* shared, unlocked: the race */
static volatile int consumer_running, producer_done;
static long consumed;

static void spin(long n)
{
    for (volatile long i = 0; i < n; i++)
        ;
}

static long __attribute__((noipa)) read_quantity(struct order *o)
{
    return o->quantity;
}

static void *consume_orders(void *arg __attribute__((unused)))
{
    consumer_running = 1;
    while (!producer_done) {
        if (current != NULL) {
            spin(CHECK_TO_USE);
            consumed += read_quantity(current);     /* current may be NULL by now */
            spin(AFTER_USE);
        }
    }
    return NULL;
}

static void *retire_order(void *arg __attribute__((unused)))
{
    while (!consumer_running)
        ;
    spin(SETTLE);
    current = NULL;
    spin(RETIRED);
    current = &the_order;
    producer_done = 1;
    return NULL;
}

int main(void)
{
    pthread_t consumer, producer;
    printf("race: a consumer and a producer share one pointer without a lock\n");
    fflush(stdout);
    pthread_create(&consumer, NULL, consume_orders, NULL);
    pthread_create(&producer, NULL, retire_order, NULL);
    pthread_join(producer, NULL);
    pthread_join(consumer, NULL);
    printf("race: no crash (%ld orders consumed)\n", consumed);
    return 0;
}
