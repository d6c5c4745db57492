/* A small HTTP/1.1 server on 127.0.0.1 for the C unit tests of the engine.
 * It listens before test_server_start returns, so a test never waits for it
 * to come up, and serves each connection in a thread of its own (keep-alive).
 * Paths:
 *   /echo   200, Content-Type: application/json, body "<method> <X-Token> <body>"
 *   /reply  200, Content-Type: application/json, the request body as the reply
 *   /retry  503, Retry-After: 7
 *   /big    200 with a 4096-byte body
 *   /drop   on a reused connection: reads the request, then closes unanswered
 *   /hold   never answers; waits until the client goes away
 *   /bye    200 "ok" as if the connection stayed open, then closes it */
#ifndef TEST_SERVER_H
#define TEST_SERVER_H

typedef struct test_server {
    int fd;
    int port;
} test_server;

int test_server_start(test_server *s);
/* Counters (thread-safe reads). */
int test_server_connections(void);
int test_server_hits(const char *path);
/* A loopback port where nothing listens. */
int test_server_closed_port(void);

#endif
