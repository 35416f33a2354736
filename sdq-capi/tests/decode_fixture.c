/* decode_fixture.c: the C API against the golden fixtures, and its error paths.
 *
 * Usage: decode_fixture FIXTURES_DIR
 *
 * For fixtures/k1_tensor_delta.sdq and fixtures/mixed.sdq (opened from a path, with plain reads
 * and from a buffer), every tensor is decoded and compared with X.expected.bin: the decoded
 * tensors in file order as little-endian f32 (fixtures/README.md). Sigma-delta tensors must
 * match within 1e-6 x the tensor's largest |value|, raw tensors exactly. Then every error path:
 * a missing file, a directory, NULL pointers, wrong buffer lengths, an unknown name, an index out of range,
 * bytes that are not an .sdq file, a damaged section. Prints "N passed, M failed".
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sdq.h"

static int passed = 0, failed = 0;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (cond) {                                                                       \
            passed++;                                                                     \
        } else {                                                                          \
            failed++;                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fprintf(stderr, " (last error: %s)\n", sdq_last_error());                     \
        }                                                                                 \
    } while (0)

/* Reads a whole file; NULL on failure. */
static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return NULL; }
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static float le_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Decodes every tensor of `file` and compares with the expected values. */
static void check_against_expected(SdqFile *file, const char *label, const uint8_t *exp,
                                   size_t exp_len) {
    size_t count = 0, at = 0;
    CHECK(sdq_tensor_count(file, &count) == SDQ_STATUS_OK, "%s: count", label);
    for (size_t i = 0; i < count; i++) {
        SdqTensorInfo info;
        uint64_t shape[SDQ_MAX_RANK];
        CHECK(sdq_tensor_info(file, i, &info, shape, SDQ_MAX_RANK) == SDQ_STATUS_OK,
              "%s: info %zu", label, i);
        uint64_t product = 1;
        for (size_t d = 0; d < info.rank; d++) product *= shape[d];
        CHECK(product == info.elements, "%s: shape product of %s", label, info.name);
        CHECK(strlen(info.name) == info.name_len, "%s: name length", label);

        size_t index = (size_t)-1;
        CHECK(sdq_find_tensor(file, info.name, &index) == SDQ_STATUS_OK && index == i,
              "%s: find %s", label, info.name);

        size_t n = (size_t)info.elements;
        float *by_name = malloc((n ? n : 1) * sizeof(float));
        float *by_index = malloc((n ? n : 1) * sizeof(float));
        CHECK(sdq_decode(file, info.name, by_name, n) == SDQ_STATUS_OK, "%s: decode %s", label,
              info.name);
        CHECK(sdq_decode_at(file, i, by_index, n) == SDQ_STATUS_OK, "%s: decode_at %zu", label, i);
        CHECK(memcmp(by_name, by_index, n * sizeof(float)) == 0, "%s: by name == by index",
              label);

        if ((at + n) * 4 > exp_len) {
            CHECK(0, "%s: expected.bin too short at %s", label, info.name);
            free(by_name);
            free(by_index);
            return;
        }
        float scale = 0.0f;
        for (size_t k = 0; k < n; k++) {
            float e = fabsf(le_f32(exp + 4 * (at + k)));
            if (e > scale) scale = e;
        }
        size_t bad = 0;
        for (size_t k = 0; k < n; k++) {
            float e = le_f32(exp + 4 * (at + k)), g = by_name[k];
            int ok = info.encoding == SDQ_ENCODING_RAW ? memcmp(&e, &g, sizeof e) == 0
                                                       : fabsf(g - e) <= 1e-6f * scale;
            if (!ok) bad++;
        }
        CHECK(bad == 0, "%s: %s: %zu of %zu values off", label, info.name, bad, n);
        at += n;
        free(by_name);
        free(by_index);
    }
    CHECK(at * 4 == exp_len, "%s: %zu expected values, %zu decoded", label, exp_len / 4, at);
    CHECK(sdq_verify(file) == SDQ_STATUS_OK, "%s: verify", label);
}

static void check_fixture(const char *dir, const char *name) {
    char path[4096], exp_path[4096], label[256];
    snprintf(path, sizeof path, "%s/%s.sdq", dir, name);
    snprintf(exp_path, sizeof exp_path, "%s/%s.expected.bin", dir, name);
    size_t exp_len = 0, file_len = 0;
    uint8_t *exp = read_all(exp_path, &exp_len);
    uint8_t *bytes = read_all(path, &file_len);
    CHECK(exp != NULL && bytes != NULL, "read %s", name);
    if (!exp || !bytes) { free(exp); free(bytes); return; }

    SdqFile *file = NULL;
    snprintf(label, sizeof label, "%s (mapped)", name);
    CHECK(sdq_open(path, &file) == SDQ_STATUS_OK && file != NULL, "%s: open", label);
    if (file) {
        check_against_expected(file, label, exp, exp_len);
        SdqStorageTotals t;
        CHECK(sdq_storage_report(file, &t) == SDQ_STATUS_OK, "%s: report", label);
        CHECK(t.file_bytes == file_len, "%s: file_bytes %llu", label,
              (unsigned long long)t.file_bytes);
        CHECK(t.elements * 4 == exp_len, "%s: elements", label);
        CHECK(t.fp32_bytes == t.elements * 4 && t.ratio_fp32 > 0.0, "%s: fp32", label);
        CHECK(t.quantized_tensors >= 1 && t.quantized_tensors <= t.tensors, "%s: counts", label);
    }
    sdq_close(file);

    file = NULL;
    snprintf(label, sizeof label, "%s (read)", name);
    CHECK(sdq_open_read(path, &file) == SDQ_STATUS_OK && file != NULL, "%s: open_read", label);
    if (file) check_against_expected(file, label, exp, exp_len);
    sdq_close(file);

    file = NULL;
    snprintf(label, sizeof label, "%s (buffer)", name);
    CHECK(sdq_open_buffer(bytes, file_len, &file) == SDQ_STATUS_OK && file != NULL,
          "%s: open_buffer", label);
    free(bytes); /* the library keeps its own copy */
    if (file) check_against_expected(file, label, exp, exp_len);
    sdq_close(file);
    free(exp);
}

static void check_k1_description(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/k1_tensor_delta.sdq", dir);
    SdqFile *file = NULL;
    if (sdq_open(path, &file) != SDQ_STATUS_OK) { CHECK(0, "open k1"); return; }
    SdqTensorInfo info;
    uint64_t shape[SDQ_MAX_RANK] = {0};
    CHECK(sdq_tensor_info(file, 0, &info, shape, SDQ_MAX_RANK) == SDQ_STATUS_OK, "info");
    CHECK(strcmp(info.name, "layer.weight") == 0, "name %s", info.name);
    CHECK(info.dtype == SDQ_DTYPE_F32, "dtype %d", (int)info.dtype);
    CHECK(info.encoding == SDQ_ENCODING_SIGMA_DELTA, "encoding %d", (int)info.encoding);
    CHECK(info.rank == 2 && shape[0] == 24 && shape[1] == 10, "shape");
    CHECK(info.elements == 240, "elements");
    sdq_close(file);
}

static void check_mixed_raw(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/mixed.sdq", dir);
    SdqFile *file = NULL;
    if (sdq_open(path, &file) != SDQ_STATUS_OK) { CHECK(0, "open mixed"); return; }
    size_t steps = 0, fc = 0;
    CHECK(sdq_find_tensor(file, "steps", &steps) == SDQ_STATUS_OK, "find steps");
    SdqTensorInfo info;
    CHECK(sdq_tensor_info(file, steps, &info, NULL, 0) == SDQ_STATUS_OK, "info, no shape");
    CHECK(info.dtype == SDQ_DTYPE_I64 && info.rank == 1 && info.elements == 64, "steps info");
    uint8_t raw[64 * 8];
    float as_float[64];
    CHECK(sdq_read_raw_at(file, steps, raw, sizeof raw) == SDQ_STATUS_OK, "raw bytes");
    CHECK(sdq_decode_at(file, steps, as_float, 64) == SDQ_STATUS_OK, "decode steps");
    int same = 1;
    for (int k = 0; k < 64; k++) {
        int64_t v = 0;
        for (int b = 7; b >= 0; b--) v = (int64_t)((uint64_t)v << 8 | raw[8 * k + b]);
        if ((float)v != as_float[k]) same = 0;
    }
    CHECK(same, "raw I64 bytes agree with the decoded floats");
    CHECK(sdq_read_raw_at(file, steps, raw, sizeof raw - 1) == SDQ_STATUS_BUFFER_LENGTH,
          "raw: short buffer");
    CHECK(sdq_find_tensor(file, "fc.bias", &fc) == SDQ_STATUS_OK, "find fc.bias");
    CHECK(sdq_tensor_info(file, fc, &info, NULL, 0) == SDQ_STATUS_OK &&
              info.encoding == SDQ_ENCODING_BIAS_OF,
          "bias-of");
    CHECK(sdq_read_raw_at(file, fc, raw, 40) == SDQ_STATUS_INVALID_ARGUMENT, "raw: not raw");
    sdq_close(file);
}

static void check_errors(const char *dir) {
    char path[4096];
    SdqFile *file = (SdqFile *)&passed; /* garbage: must be overwritten with NULL */

    /* A missing file. */
    CHECK(sdq_open("/nonexistent/dir/model.sdq", &file) == SDQ_STATUS_IO, "missing file");
    CHECK(file == NULL, "out is NULL after a failure");
    CHECK(strstr(sdq_last_error(), "/nonexistent/dir/model.sdq") != NULL,
          "the message names the path");
    CHECK(sdq_open_read("/nonexistent/dir/model.sdq", &file) == SDQ_STATUS_IO, "missing (read)");

    /* A directory where a file is expected: named as such (not "No such device"). */
    CHECK(sdq_open(dir, &file) == SDQ_STATUS_IO, "directory");
    CHECK(file == NULL, "out is NULL after opening a directory");
    snprintf(path, sizeof path, "%s: is a directory", dir);
    CHECK(strcmp(sdq_last_error(), path) == 0, "directory message: %s", sdq_last_error());
    CHECK(sdq_open_read(dir, &file) == SDQ_STATUS_IO, "directory (read)");
    CHECK(strcmp(sdq_last_error(), path) == 0, "directory message (read): %s", sdq_last_error());

    /* NULL pointers. */
    snprintf(path, sizeof path, "%s/k1_tensor_delta.sdq", dir);
    CHECK(sdq_open(NULL, &file) == SDQ_STATUS_NULL_POINTER, "NULL path");
    CHECK(strstr(sdq_last_error(), "path") != NULL, "message names the argument");
    CHECK(sdq_open(path, NULL) == SDQ_STATUS_NULL_POINTER, "NULL out");
    CHECK(sdq_open_buffer(NULL, 10, &file) == SDQ_STATUS_NULL_POINTER, "NULL data");
    size_t count = 0;
    CHECK(sdq_tensor_count(NULL, &count) == SDQ_STATUS_NULL_POINTER, "NULL file");
    CHECK(sdq_verify(NULL) == SDQ_STATUS_NULL_POINTER, "NULL file (verify)");
    CHECK(sdq_storage_report(NULL, NULL) == SDQ_STATUS_NULL_POINTER, "NULL file (report)");
    sdq_close(NULL); /* accepted */

    /* Not an .sdq file. */
    const uint8_t junk[100] = "PK\x03\x04 this is a zip file, not .sdq";
    CHECK(sdq_open_buffer(junk, sizeof junk, &file) == SDQ_STATUS_FORMAT, "junk bytes");
    CHECK(strstr(sdq_last_error(), "R2") != NULL, "format message names the rule: %s",
          sdq_last_error());
    CHECK(sdq_open_buffer(junk, 0, &file) == SDQ_STATUS_FORMAT, "empty buffer");

    if (sdq_open(path, &file) != SDQ_STATUS_OK) { CHECK(0, "open k1"); return; }
    CHECK(sdq_tensor_count(file, NULL) == SDQ_STATUS_NULL_POINTER, "NULL count");
    CHECK(sdq_storage_report(file, NULL) == SDQ_STATUS_NULL_POINTER, "NULL totals");
    SdqTensorInfo info;
    uint64_t shape[1];
    CHECK(sdq_tensor_info(file, 0, NULL, NULL, 0) == SDQ_STATUS_NULL_POINTER, "NULL info");
    CHECK(sdq_tensor_info(file, 1, &info, NULL, 0) == SDQ_STATUS_INVALID_ARGUMENT,
          "index out of range");
    CHECK(sdq_tensor_info(file, 0, &info, shape, 1) == SDQ_STATUS_BUFFER_LENGTH,
          "shape array too short");
    CHECK(info.rank == 2, "info is filled even so");

    float buf[241];
    CHECK(sdq_decode(file, NULL, buf, 240) == SDQ_STATUS_NULL_POINTER, "NULL name");
    CHECK(sdq_decode(file, "layer.weight", NULL, 240) == SDQ_STATUS_NULL_POINTER, "NULL out");
    CHECK(sdq_decode(file, "layer.weight", buf, 239) == SDQ_STATUS_BUFFER_LENGTH, "short buf");
    CHECK(strstr(sdq_last_error(), "240") != NULL, "message gives the element count");
    CHECK(sdq_decode(file, "layer.weight", buf, 241) == SDQ_STATUS_BUFFER_LENGTH, "long buf");
    CHECK(sdq_decode(file, "layer.weight", NULL, 0) == SDQ_STATUS_BUFFER_LENGTH, "NULL, 0");
    CHECK(sdq_decode(file, "no.such.tensor", buf, 240) == SDQ_STATUS_NO_SUCH_TENSOR,
          "unknown name");
    CHECK(strstr(sdq_last_error(), "no.such.tensor") != NULL, "message names the tensor");
    CHECK(sdq_decode(file, "\xff\xfe", buf, 240) == SDQ_STATUS_INVALID_ARGUMENT, "not UTF-8");
    CHECK(sdq_decode_at(file, 7, buf, 240) == SDQ_STATUS_INVALID_ARGUMENT, "index (decode)");
    size_t index;
    CHECK(sdq_find_tensor(file, "nope", &index) == SDQ_STATUS_NO_SUCH_TENSOR, "find unknown");
    CHECK(sdq_find_tensor(file, "layer.weight", NULL) == SDQ_STATUS_NULL_POINTER, "NULL index");
    /* The handle still works after errors. */
    CHECK(sdq_decode(file, "layer.weight", buf, 240) == SDQ_STATUS_OK, "decode after errors");
    sdq_close(file);

    /* Damage: flip one bit in each of the last 160 bytes (sections and their padding). Every
       flip is caught: at open (padding, R-rules) or when decoding (CRC32). */
    size_t len = 0;
    uint8_t *bytes = read_all(path, &len);
    if (!bytes || len < 200) { free(bytes); CHECK(0, "read k1"); return; }
    int missed = 0, checksum = 0;
    for (size_t pos = len - 160; pos < len; pos++) {
        bytes[pos] ^= 0x40;
        file = NULL;
        SdqStatus st = sdq_open_buffer(bytes, len, &file);
        if (st == SDQ_STATUS_OK) {
            SdqStatus d = sdq_decode(file, "layer.weight", buf, 240);
            if (d == SDQ_STATUS_CHECKSUM) checksum++;
            if (d == SDQ_STATUS_OK || sdq_verify(file) == SDQ_STATUS_OK) missed++;
        } else if (st != SDQ_STATUS_FORMAT) {
            missed++;
        }
        sdq_close(file);
        bytes[pos] ^= 0x40;
    }
    free(bytes);
    CHECK(missed == 0, "%d damaged copies decoded without an error", missed);
    CHECK(checksum > 0, "a damaged section gives SDQ_STATUS_CHECKSUM");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    printf("sdq C API %s\n", sdq_version());
    CHECK(strcmp(sdq_last_error(), "") == 0, "no error yet");
    check_fixture(argv[1], "k1_tensor_delta");
    check_fixture(argv[1], "mixed");
    check_k1_description(argv[1]);
    check_mixed_raw(argv[1]);
    check_errors(argv[1]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
