/* Two Lua states in two threads, each with its own engine, sending requests
 * at the same time: curl_global_init must run once and nothing may be shared
 * between engines. Usage: two_states URL TOKEN CA_FILE LUA_PATH REQUESTS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lcore.h"

typedef struct {
    const char *const *argv;
    int ok;
    char msg[256];
} two_states_job;

static const char two_states_chunk[] =
    "local url, token, ca, lpath, n = ...\n"
    "package.path = lpath .. ';' .. package.path\n"
    "local core = require 'prequalify.core'\n"
    "local e <close> = core.engine{ ca_file = ca, max_connections = 4 }\n"
    "local body = '{\"Dn\":\"\\\\\\\\VED\\\\\\\\Code Signing\\\\\\\\Projects\\\\\\\\Sample\\\\\\\\Production Environment\",'\n"
    "  .. '\"Data\":\"q2rFZ7Tqxo2hKc8fvJNtBkO/7qR4LHCm0mQYDJ3HjNs=\",\"Comment\":\"threads\",'\n"
    "  .. '\"User\":\"local:sample-cs-user\"}'\n"
    "for _ = 1, tonumber(n) do\n"
    "  e:submit{ url = url .. '/vedsdk/Flow/Actions/CodeSign/PreQualify/Create', body = body,\n"
    "            headers = { Authorization = 'Bearer ' .. token, ['Content-Type'] = 'application/json' } }\n"
    "end\n"
    "local done = 0\n"
    "while done < tonumber(n) do\n"
    "  for _, r in ipairs(e:poll(5)) do\n"
    "    assert(r.status == 200 and r.body:find('\"Success\":%s*true'), 'failed: ' .. r.status .. ' ' .. r.body)\n"
    "    done = done + 1\n"
    "  end\n"
    "end\n"
    "return done\n";

static void *two_states_run(void *ud)
{
    two_states_job *job = (two_states_job *)ud;
    lua_State *L = luaL_newstate();
    int i;
    if (!L) {
        snprintf(job->msg, sizeof job->msg, "luaL_newstate failed");
        return NULL;
    }
    luaL_openlibs(L);
    luaL_requiref(L, "prequalify.core", luaopen_prequalify_core, 0);
    lua_pop(L, 1);
    if (luaL_loadstring(L, two_states_chunk) != LUA_OK) {
        snprintf(job->msg, sizeof job->msg, "%s", lua_tostring(L, -1));
    } else {
        for (i = 1; i <= 5; i++) lua_pushstring(L, job->argv[i]);
        if (lua_pcall(L, 5, 1, 0) != LUA_OK) {
            snprintf(job->msg, sizeof job->msg, "%s", lua_tostring(L, -1));
        } else {
            job->ok = 1;
            snprintf(job->msg, sizeof job->msg, "%lld", (long long)lua_tointeger(L, -1));
        }
    }
    lua_close(L);
    return NULL;
}

int main(int argc, char **argv)
{
    two_states_job jobs[2];
    pthread_t threads[2];
    int i, failed = 0;
    if (argc != 6) {
        fprintf(stderr, "usage: %s URL TOKEN CA_FILE LUA_PATH REQUESTS\n", argv[0]);
        return 2;
    }
    for (i = 0; i < 2; i++) {
        jobs[i].argv = (const char *const *)argv;
        jobs[i].ok = 0;
        jobs[i].msg[0] = '\0';
        if (pthread_create(&threads[i], NULL, two_states_run, &jobs[i]) != 0) return 1;
    }
    for (i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        printf("thread %d: %s %s\n", i + 1, jobs[i].ok ? "ok" : "FAILED", jobs[i].msg);
        if (!jobs[i].ok) failed = 1;
    }
    return failed;
}
