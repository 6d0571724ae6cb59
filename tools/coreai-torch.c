/* coreai-torch: converts Hugging Face / PyTorch checkpoints and GGUF files to
 * .coreaimodel (docs/FORMAT.md), and verifies .coreaimodel checksums.
 *
 *   coreai-torch convert --model PATH --architecture decoder-only --output OUT
 *   coreai-torch import-gguf IN.gguf OUT.coreaimodel
 *   coreai-torch verify FILE.coreaimodel
 *
 * Output is written atomically: an interrupted or failed run leaves no OUT. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert/convert.h"
#include "format/coreaimodel.h"

static const char usage[] =
    "usage:\n"
    "  coreai-torch convert --model PATH --architecture decoder-only --output OUT.coreaimodel\n"
    "                       [--config config.json] [--tokenizer DIR]\n"
    "                       [--dtype auto|f32|f16|bf16] [--alignment BYTES] [--quiet]\n"
    "  coreai-torch import-gguf IN.gguf OUT.coreaimodel [--alignment BYTES] [--quiet]\n"
    "  coreai-torch verify FILE.coreaimodel\n"
    "\n"
    "convert     a Hugging Face model folder (config.json, tokenizer.json, tokenizer_config.json,\n"
    "            and model.safetensors, sharded safetensors with their index, or\n"
    "            pytorch_model.bin) or one PyTorch checkpoint (.pt, .pth, .bin) with --config\n"
    "            or a config.json beside it. Llama, Mistral and Qwen2 decoder-only models;\n"
    "            F32, F16 and BF16 weights. --dtype sets the matrices' type (auto keeps the\n"
    "            checkpoint's); norms and biases are always f32. No code from the checkpoint\n"
    "            runs: pickles are read by a restricted reader that only knows state_dicts.\n"
    "import-gguf a lossless import of a GGUF file: every key and tensor byte kept.\n"
    "verify      checks every checksum of a .coreaimodel and names the tensors that fail.\n"
    "\n"
    "The output is written to a temporary file and renamed into place only when complete.\n";

static bool quiet;
static bool tty;

static void progress(void *user, uint64_t done, uint64_t total)
{
    (void)user;
    if (quiet || !tty || total == 0)
        return;
    int pct = (int)(done * 100 / total), bar = pct * 30 / 100;
    char b[31];
    for (int i = 0; i < 30; i++)
        b[i] = i < bar ? '#' : '.';
    b[30] = '\0';
    fprintf(stderr, "\r[%s] %3d%%  %.1f / %.1f MB", b, pct, (double)done / 1e6,
            (double)total / 1e6);
    if (done == total)
        fputc('\n', stderr);
}

static int fail(const struct cai_error *err)
{
    if (tty && !quiet)
        fputc('\n', stderr);
    fprintf(stderr, "coreai-torch: error: %s\n", err->msg[0] ? err->msg : cai_strerror(err->code));
    return 1;
}

static int parse_alignment(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v == 0 || v > (1ul << 24)) {
        fprintf(stderr, "coreai-torch: --alignment must be a power of two in [4096, 16777216]\n");
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int cmd_convert(int argc, char **argv)
{
    struct cai_convert_params p;
    struct cai_error err = {0};
    memset(&p, 0, sizeof(p));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quiet") == 0) {
            quiet = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "coreai-torch: %s needs a value\n%s", a, usage);
            return 2;
        }
        i++;
        if (strcmp(a, "--model") == 0) {
            p.model = v;
        } else if (strcmp(a, "--output") == 0 || strcmp(a, "-o") == 0) {
            p.output = v;
        } else if (strcmp(a, "--architecture") == 0) {
            p.architecture = v;
        } else if (strcmp(a, "--config") == 0) {
            p.config = v;
        } else if (strcmp(a, "--tokenizer") == 0) {
            p.tokenizer_dir = v;
        } else if (strcmp(a, "--alignment") == 0) {
            if (parse_alignment(v, &p.alignment) < 0)
                return 2;
        } else if (strcmp(a, "--dtype") == 0) {
            if (strcmp(v, "auto") == 0)
                p.dtype = CAI_CONVERT_AUTO;
            else if (strcmp(v, "f32") == 0)
                p.dtype = CAI_CONVERT_F32;
            else if (strcmp(v, "f16") == 0)
                p.dtype = CAI_CONVERT_F16;
            else if (strcmp(v, "bf16") == 0)
                p.dtype = CAI_CONVERT_BF16;
            else {
                fprintf(stderr, "coreai-torch: --dtype must be auto, f32, f16 or bf16\n");
                return 2;
            }
        } else {
            fprintf(stderr, "coreai-torch: unknown option %s\n%s", a, usage);
            return 2;
        }
    }
    if (!p.model || !p.output) {
        fprintf(stderr, "coreai-torch: convert needs --model and --output\n%s", usage);
        return 2;
    }
    if (!p.architecture)
        p.architecture = "decoder-only";
    p.progress = progress;
    if (!quiet)
        fprintf(stderr, "converting %s -> %s\n", p.model, p.output);
    if (cai__convert_hf(&p, &err) < 0)
        return fail(&err);
    if (!quiet)
        fprintf(stderr, "wrote %s\n", p.output);
    return 0;
}

static int cmd_import(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    uint32_t alignment = 0;
    struct cai_error err = {0};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else if (strcmp(argv[i], "--alignment") == 0 && i + 1 < argc) {
            if (parse_alignment(argv[++i], &alignment) < 0)
                return 2;
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            fprintf(stderr, "coreai-torch: unexpected argument %s\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "coreai-torch: import-gguf needs IN and OUT\n%s", usage);
        return 2;
    }
    if (!quiet)
        fprintf(stderr, "importing %s -> %s\n", in, out);
    if (cai__convert_gguf(in, out, alignment, progress, NULL, &err) < 0)
        return fail(&err);
    if (!quiet)
        fprintf(stderr, "wrote %s\n", out);
    return 0;
}

static int verify_cb(void *user, uint64_t i, const char *name, bool ok, uint64_t done,
                     uint64_t total)
{
    (void)user;
    (void)i;
    if (!ok)
        fprintf(stderr, "%sBAD checksum: %s\n", tty ? "\r" : "", name);
    progress(NULL, done, total);
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    struct cai_error err = {0};
    struct cai_gguf *g;
    if (argc != 1) {
        fprintf(stderr, "coreai-torch: verify needs one FILE\n%s", usage);
        return 2;
    }
    if (cai__cam_open(&g, argv[0], &err) < 0)
        return fail(&err);
    struct cai_cam_verify_result r;
    int rc = cai__cam_verify(g, verify_cb, NULL, &r, &err);
    cai__gguf_close(g);
    if (rc < 0)
        return fail(&err);
    printf("%s: OK (%" PRIu64 " tensors, %.1f MB checked)\n", argv[0], r.n_tensors,
           (double)r.bytes_hashed / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    /* A file-size limit (ulimit -f) then fails the write with EFBIG, which
     * is reported, instead of killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    tty = isatty(2);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "convert") == 0)
        return cmd_convert(argc - 2, argv + 2);
    if (strcmp(argv[1], "import-gguf") == 0)
        return cmd_import(argc - 2, argv + 2);
    if (strcmp(argv[1], "verify") == 0)
        return cmd_verify(argc - 2, argv + 2);
    fprintf(stderr, "coreai-torch: unknown command \"%s\"\n%s", argv[1], usage);
    return 2;
}
