/* Unit tests of the per-connection stream-start counter (node/conn_starts.c). */
#include "node/conn_starts.h"

#include "tests/unit/check.h"

int main(void)
{
    conn_starts_t t = {0};
    /* 5 starts a second are allowed; the 6th and later in that second are not */
    for (int i = 0; i < 5; i++)
        CHECK(conn_starts_hit(&t, 7, 1000, 5) == 0);
    CHECK(conn_starts_hit(&t, 7, 1999, 5) == 1);
    CHECK(conn_starts_hit(&t, 7, 1999, 5) == 1);
    /* another connection is counted on its own */
    CHECK(conn_starts_hit(&t, 8, 1999, 5) == 0);
    /* the next second starts afresh */
    CHECK(conn_starts_hit(&t, 7, 2000, 5) == 0);
    /* connection id 0 is a valid id */
    for (int i = 0; i < 3; i++)
        CHECK(conn_starts_hit(&t, 0, 2000, 2) == (i >= 2));

    /* many connections: the table grows and keeps every count */
    for (uint64_t id = 100; id < 5100; id++)
        CHECK(conn_starts_hit(&t, id, 3000, 1) == 0);
    int over = 0;
    for (uint64_t id = 100; id < 5100; id++)
        over += conn_starts_hit(&t, id, 3500, 1);
    CHECK(over == 5000);
    CHECK(t.used >= 5000);
    /* a second later they are still kept (the counting second is the last
     * one); two seconds later they are forgotten and the table shrinks */
    conn_starts_expire(&t, 4000);
    CHECK(t.used == 5000);
    conn_starts_expire(&t, 5000);
    CHECK(t.used == 0 && t.cap == 64);
    CHECK(conn_starts_hit(&t, 100, 5000, 1) == 0);
    conn_starts_dispose(&t);
    CHECK(t.slots == NULL && t.cap == 0);
    return CHECK_DONE();
}
