#include <stdio.h>
#include <stdlib.h>

#include "sdq.h"

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "model.sdq";
    SdqFile *file = NULL;
    if (sdq_open(path, &file) != SDQ_STATUS_OK) {
        fprintf(stderr, "sdq: %s\n", sdq_last_error());
        return 1;
    }
    size_t count = 0;
    sdq_tensor_count(file, &count);
    for (size_t i = 0; i < count; i++) {
        SdqTensorInfo info;
        uint64_t shape[SDQ_MAX_RANK];
        sdq_tensor_info(file, i, &info, shape, SDQ_MAX_RANK);
        size_t n = (size_t)info.elements;
        float *values = malloc((n ? n : 1) * sizeof(float));
        if (values == NULL || sdq_decode_at(file, i, values, n) != SDQ_STATUS_OK) {
            fprintf(stderr, "sdq: %s\n", values ? sdq_last_error() : "out of memory");
            free(values);
            sdq_close(file);
            return 1;
        }
        printf("%-12s rank %zu, %zu values, first %g\n", info.name, info.rank, n,
               n ? values[0] : 0.0f);
        free(values);
    }
    SdqStorageTotals totals;
    sdq_storage_report(file, &totals);
    printf("%.2fx smaller than fp32\n", totals.ratio_fp32);
    sdq_close(file);
    return 0;
}
