/* test_pickle.c: the restricted pickle reader on real torch.save state_dicts
 * and on hostile pickles: forbidden globals (nothing may run), whole pickled
 * modules, deep nesting, huge memo indexes, truncation, bad opcodes. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "convert/convert_int.h"
#include "format/pickle.h"
#include "format/zip.h"

static int parse(const char *bytes, size_t n, struct cai_error *err)
{
    struct cai_pickle *p = (struct cai_pickle *)1;
    const struct cai_pk_obj *root;
    int rc = cai__pk_parse(&p, &root, bytes, n, "t.pkl", err);
    if (rc == 0)
        cai__pk_free(p);
    else
        CHECK(p == NULL && err->msg[0]);
    return rc;
}

#define P(s) s, sizeof(s) - 1

static void test_state_dict(void)
{
    /* OrderedDict() filled with one tensor, then BUILD with _metadata. */
    static const char pk[] =
        "\x80\x02" "ccollections\nOrderedDict\nq\x00)Rq\x01("
        "X\x01\x00\x00\x00w"
        "ctorch._utils\n_rebuild_tensor_v2\nq\x02("
        "(X\x07\x00\x00\x00storageq\x03" "ctorch\nFloatStorage\nq\x04"
        "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x06tQ"
        "K\x00K\x02K\x03\x86K\x03K\x01\x86\x89h\x00)Rq\x05tR"
        "u}X\x09\x00\x00\x00_metadatah\x00)Rsb.";
    struct cai_pickle *p;
    const struct cai_pk_obj *root;
    struct cai_error err;
    int rc = cai__pk_parse(&p, &root, pk, sizeof(pk) - 1, "sd.pkl", &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc)
        return;
    CHECK(root->type == CAI_PK_DICT && root->n == 2);
    const struct cai_pk_obj *t = root->items[1];
    CHECK(root->items[0]->type == CAI_PK_STR && root->items[0]->len == 1);
    CHECK(t->type == CAI_PK_TENSOR && t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
          t->stride[0] == 3 && t->stride[1] == 1 && t->offset == 0);
    CHECK(t->storage->type == CAI_PK_STORAGE && t->storage->i == 6 &&
          cai__pk_storage_elem_size(t->storage->storage_type) == 4);
    cai__pk_free(p);
}

static void test_real_checkpoints(void)
{
    const char *files[] = {"tests/golden/torch/llama/pytorch_model.bin",
                           "tests/golden/torch/qwen2/pytorch_model.bin"};
    for (size_t f = 0; f < CAI_ARRAY_LEN(files); f++) {
        struct cai_zip *z;
        struct cai_error err;
        if (cai__zip_open(&z, files[f], &err) != 0) {
            CHECK_MSG(0, "%s", err.msg);
            continue;
        }
        const struct cai_zip_entry *e = cai__zip_find(z, "pytorch_model/data.pkl");
        CHECK(e != NULL);
        struct cai_pickle *p;
        const struct cai_pk_obj *root;
        CHECK(cai__pk_parse(&p, &root, e->data, (size_t)e->n_bytes, "data.pkl", &err) == 0);
        CHECK(root->type == CAI_PK_DICT && root->n >= 2 * 19);
        for (uint32_t i = 0; i < root->n; i += 2)
            CHECK(root->items[i + 1]->type == CAI_PK_TENSOR);
        cai__pk_free(p);
        /* Every truncation of the real pickle is refused cleanly. */
        for (size_t len = 0; len < e->n_bytes; len++)
            CHECK(parse((const char *)e->data, len, &err) < 0);
        cai__zip_close(z);
    }
}

static void test_forbidden_globals(void)
{
    struct cai_error err;
    unlink("/tmp/cai_pwned");
    /* os.system("touch /tmp/cai_pwned"), the classic. */
    CHECK(parse(P("cos\nsystem\n(X\x14\x00\x00\x00touch /tmp/cai_pwnedtR."), &err) ==
          CAI_EFORMAT);
    CHECK(strstr(err.msg, "global os.system is not allowed") && strstr(err.msg, "executed"));
    CHECK(parse(P("\x80\x02" "cbuiltins\neval\nX\x04\x00\x00\x00" "1+1\x85R."), &err) ==
          CAI_EFORMAT && strstr(err.msg, "builtins.eval"));
    CHECK(parse(P("\x80\x02" "c__builtin__\nexec\n."), &err) == CAI_EFORMAT &&
          strstr(err.msg, "__builtin__.exec"));
    CHECK(parse(P("cposix\nsystem\n."), &err) == CAI_EFORMAT && strstr(err.msg, "posix.system"));
    CHECK(parse(P("csubprocess\nPopen\n."), &err) == CAI_EFORMAT);
    /* STACK_GLOBAL (protocol 4) is checked the same way. */
    CHECK(parse(P("\x80\x04\x8c\x08" "builtins\x8c\x04" "exec\x93."), &err) == CAI_EFORMAT &&
          strstr(err.msg, "builtins.exec"));
    CHECK(parse(P("\x80\x04\x8c\x02os\x8c\x06system\x93."), &err) == CAI_EFORMAT);
    /* Lookalikes of allowed names. */
    CHECK(parse(P("ctorch\nload\n."), &err) == CAI_EFORMAT);
    CHECK(parse(P("ctorch._utils\n_rebuild_tensor\n."), &err) == CAI_EFORMAT);
    CHECK(parse(P("ccollections\nOrderedDict \n."), &err) == CAI_EFORMAT);
    struct stat st;
    CHECK(stat("/tmp/cai_pwned", &st) != 0); /* nothing ran */
    /* Allowed globals used the wrong way. */
    CHECK(parse(P("ctorch\nFloatStorage\n)R."), &err) == CAI_EFORMAT &&
          strstr(err.msg, "not callable"));
    CHECK(parse(P("ccollections\nOrderedDict\nK\x01\x85R."), &err) == CAI_EFORMAT);
    CHECK(parse(P("K\x01)R."), &err) == CAI_EFORMAT && strstr(err.msg, "REDUCE"));
}

static void test_whole_module(void)
{
    struct cai_error err;
    /* torch.save(model) pickles the class and NEWOBJ/REDUCE on it. */
    CHECK(parse(P("\x80\x02" "c__main__\nNet\nq\x00)\x81q\x01}b."), &err) == CAI_EFORMAT);
    CHECK(strstr(err.msg, "__main__.Net") && strstr(err.msg, "state_dict()"));
    CHECK(parse(P("\x80\x02" "ctransformers.models.llama.modeling_llama\nLlamaForCausalLM\n."),
                &err) == CAI_EFORMAT && strstr(err.msg, "state_dict()"));
    CHECK(parse(P("\x80\x02" "ctorch.nn.modules.linear\nLinear\n."), &err) == CAI_EFORMAT &&
          strstr(err.msg, "state_dict()"));
    /* Opcodes that build arbitrary objects are not allowed either. */
    CHECK(parse(P("\x80\x02)\x81."), &err) == CAI_EFORMAT && strstr(err.msg, "not allowed"));
    CHECK(parse(P("(i__main__\nX\n."), &err) == CAI_EFORMAT);
    CHECK(parse(P("\x80\x02N\x82\x01."), &err) == CAI_EFORMAT);
}

static void test_limits(void)
{
    struct cai_error err;
    /* 5000 nested MARKs. */
    char *b = malloc(10000);
    memset(b, '(', 5000);
    b[5000] = '.';
    CHECK(parse(b, 5001, &err) == CAI_EFORMAT && strstr(err.msg, "MARKs nested deeper"));
    /* 100000 nested one-tuples: no recursion, parses. */
    size_t n = 0;
    b = realloc(b, 200010);
    b[n++] = ')';
    for (int i = 0; i < 100000; i++)
        b[n++] = '\x85';
    b[n++] = '.';
    CHECK(parse(b, n, &err) == 0);
    /* 100000 nested lists through APPEND. */
    n = 0;
    for (int i = 0; i < 50000; i++)
        b[n++] = ']';
    for (int i = 0; i < 49999; i++)
        b[n++] = 'a';
    b[n++] = '.';
    CHECK(parse(b, n, &err) == 0);
    free(b);
    /* Huge memo indexes. */
    CHECK(parse(P("Nr\xff\xff\xff\xff."), &err) == CAI_EFORMAT && strstr(err.msg, "memo index"));
    CHECK(parse(P("Nr\x00\x00\x40\x00."), &err) == CAI_EFORMAT && strstr(err.msg, "exceeds"));
    CHECK(parse(P("Nr\x00\x00\x3f\x00."), &err) == 0); /* just under the limit */
    CHECK(parse(P("j\xff\xff\xff\xff."), &err) == CAI_EFORMAT && strstr(err.msg, "never set"));
    CHECK(parse(P("h\x05."), &err) == CAI_EFORMAT && strstr(err.msg, "never set"));
    /* Lengths past the end. */
    CHECK(parse(P("X\xff\xff\xff\x7f"), &err) == CAI_EFORMAT && strstr(err.msg, "past the end"));
    CHECK(parse(P("\x8d\xff\xff\xff\xff\xff\xff\xff\xff."), &err) == CAI_EFORMAT);
    CHECK(parse(P("T\xff\xff\xff\xff"), &err) == CAI_EFORMAT);
    CHECK(parse(P("\x95\xff\xff\xff\xff\xff\xff\xff\x7f"), &err) == CAI_EFORMAT);
    CHECK(parse(P("\x8b\x00\x00\x01\x00"), &err) == CAI_EFORMAT && strstr(err.msg, "too large"));
    /* Stack discipline. */
    CHECK(parse(P("."), &err) == CAI_EFORMAT);
    CHECK(parse(P("t."), &err) == CAI_EFORMAT);
    CHECK(parse(P("0"), &err) == CAI_EFORMAT);
    CHECK(parse(P("(K\x01\x86."), &err) == CAI_EFORMAT && strstr(err.msg, "underflow"));
    CHECK(parse(P("(N."), &err) == CAI_EFORMAT && strstr(err.msg, "MARK"));
    CHECK(parse(P("N"), &err) == CAI_EFORMAT && strstr(err.msg, "without STOP"));
    CHECK(parse(P("}(K\x01u."), &err) == CAI_EFORMAT);
    CHECK(parse(P("NK\x01s."), &err) == CAI_EFORMAT);
    CHECK(parse(P("\x80\x09."), &err) == CAI_EFORMAT && strstr(err.msg, "protocol"));
    CHECK(parse(P("\x80\x02\xff."), &err) == CAI_EFORMAT && strstr(err.msg, "opcode 0xff"));
    CHECK(parse(P("ccollections\nOrderedDict"), &err) == CAI_EFORMAT);
    /* Persistent ids and tensors with bad parts. */
    CHECK(parse(P("(X\x07\x00\x00\x00storageNX\x01\x00\x00\x00" "0NK\x01tQ."), &err) ==
          CAI_EFORMAT && strstr(err.msg, "storage type"));
    CHECK(parse(P("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x02\x00\x00\x00..NK\x01tQ."),
                &err) == CAI_EFORMAT && strstr(err.msg, "storage key"));
    CHECK(parse(P("K\x01Q."), &err) == CAI_EFORMAT && strstr(err.msg, "persistent id"));
    CHECK(parse(P("ctorch._utils\n_rebuild_tensor_v2\nK\x01K\x00K\x01\x85K\x01\x85\x89N"
                  "(tR."), &err) == CAI_EFORMAT);
}

/* The converter's view: a state_dict pickle inside a checkpoint that names
 * a forbidden global is refused by cai__src_open with the pickle's reason. */
static void test_checkpoint_refused(void)
{
    struct cai_src src;
    struct cai_error err;
    const char *path = "/tmp/cai_test_pickle_not_zip.bin";
    FILE *f = fopen(path, "wb");
    fputs("\x80\x02" "cos\nsystem\n.", f);
    fclose(f);
    CHECK(cai__src_open(&src, path, &err) == CAI_EUNSUPPORTED && strstr(err.msg, "legacy"));
    unlink(path);
}

int main(void)
{
    RUN(test_state_dict);
    RUN(test_real_checkpoints);
    RUN(test_forbidden_globals);
    RUN(test_whole_module);
    RUN(test_limits);
    RUN(test_checkpoint_refused);
    return test_done();
}
