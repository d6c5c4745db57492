/* Fuzzes pq_utf8_check against an independent reading of the Unicode
 * standard's table of well-formed sequences: same verdict, same offset. */
#include "pq_prefix.h"

#include "fuzz_common.h"
#include "pq_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_dup(data, size);
    size_t bad = (size_t)-1, ref_bad = (size_t)-1;
    int rc = pq_utf8_check(s, size, &bad);
    int ref = fuzz_utf8_ref(data, size, &ref_bad);
    FUZZ_CHECK(rc == ref);
    if (rc != 0) {
        FUZZ_CHECK(bad == ref_bad);
        FUZZ_CHECK(bad < size);
        /* Everything before the reported offset is well-formed. */
        FUZZ_CHECK(pq_utf8_check(s, bad, NULL) == 0);
    }
    FUZZ_CHECK(pq_utf8_check(s, size, NULL) == rc);
    free(s);
    return 0;
}
