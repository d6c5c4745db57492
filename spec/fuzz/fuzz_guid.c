/* Fuzzes the GUID parser (pq_is_guid) against a positional restatement of
 * {8-4-4-4-12}, and checks that every accepted GUID also makes a valid
 * PrefixedUniversal identity. */
#include "pq_prefix.h"

#include "fuzz_common.h"
#include "pq_common.h"
#include "pq_validate.h"

static int fuzz_guid_ref(const unsigned char *s, size_t n)
{
    size_t i;
    if (n != 38 || s[0] != '{' || s[37] != '}') return 0;
    for (i = 1; i < 37; i++) {
        int dash = i == 9 || i == 14 || i == 19 || i == 24;
        unsigned char c = s[i];
        int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    int ok = pq_is_guid(s, size);
    FUZZ_CHECK(ok == 0 || ok == 1);
    FUZZ_CHECK(ok == fuzz_guid_ref(data, size));
    if (ok) {
        char user[6 + 38], msg[PQ_MSG_MAX];
        memcpy(user, "local:", 6);
        memcpy(user + 6, s, 38);
        FUZZ_CHECK(pq_check_user(user, sizeof user, msg, sizeof msg) == 0);
    }
    free(s);
    return 0;
}
