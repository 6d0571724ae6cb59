#!/usr/bin/env python3
"""Writes tokenizer reference fixtures from llama.cpp (PyPI llama-cpp-python).

Usage:
  python3 scripts/make_tok_fixtures.py [--pre NAME] MODEL.gguf OUT.txt
  e.g. models/SmolLM2-135M-Instruct.Q4_1.gguf tests/golden/tok_smollm2.txt
       models/gemma-3-270m-q4_k_m.gguf          tests/golden/tok_gemma3.txt
       --pre llama-bpe models/SmolLM2-135M-Instruct.Q4_1.gguf tests/golden/tok_pre_llama-bpe.txt

--pre loads the model's vocabulary with tokenizer.ggml.pre replaced by NAME
(a metadata-only copy is written with the PyPI `gguf` package), to check the
other pre-tokenizers on a real vocabulary; the file then says "# pre: NAME".

The model is loaded with vocab_only (no weights). For every corpus string the
file holds one line of seven tab-separated fields:

  text   hex of the input bytes (any bytes; some cases are invalid UTF-8)
  ids0   llama_tokenize(add_special=false, parse_special=false), comma-separated
  ids1   llama_tokenize(add_special=false, parse_special=true)
  ids2   llama_tokenize(add_special=true,  parse_special=true)
  det0   hex of llama_detokenize(ids0, remove_special=false, unparse_special=false)
  det1   hex of llama_detokenize(ids1, remove_special=false, unparse_special=true)
  utf1   the pieces of ids1 (llama_token_to_piece, special=true, the first
         one's leading space stripped when the vocabulary prepends one) joined
         and decoded with errors="replace": what a streaming detokenizer that
         emits only whole characters must produce

Lines starting with '#' are comments; "# case N: <json>" shows each input
readably, "# eog: ids" lists every id llama_vocab_is_eog() accepts, and
"# bos: id", "# eos: id" give the special ids llama.cpp settled on.
"""
import ctypes
import json
import sys

import llama_cpp as L


def corpus():
    c = []
    add = c.append

    # --- basics
    for s in ["", " ", "  ", "   ", "a", "A", "Hello", "Hello world", " Hello world",
              "Hello World!", "hello, world.", "HELLO WORLD", "The quick brown fox jumps over the lazy dog.",
              "I've been 'there' and it's \"fine\".", "Hello\nworld", "Hello\n\nworld",
              "Hello \n world", "tab\tseparated\tvalues", "trailing space ", "trailing spaces   ",
              " leading", "   leading three", "\n", "\n\n", "\n\n\n", "\n\n\n\n\n\n\n\n\n\n",
              "\r\n", "a\r\nb\r\n", "\r\n\r\n", "\t", "\t\t", "\t\t\t\t", " \t \t ", "\u00a0",
              "a\u00a0b", "a\u2003b", "a\u3000b", "\u2028\u2029", "\x0b\x0c", "\x00", "a\x00b",
              "\x1c\x1d\x1e\x1f", "\x7f", "\x01\x02\x03"]:
        add(s)

    # --- whitespace runs
    for ws in [" ", "\t", "\n", "\r\n", " \n", "\n ", "\t\n"]:
        for k in [2, 3, 5, 8, 17]:
            add("x" + ws * k + "y")
    for k in [1, 2, 3, 4, 7, 16, 33]:
        add(" " * k + "word")
        add("word" + " " * k)
        add("a" + " " * k + "b")
    add("    def f():\n        return 1\n")
    add("line1\n\n\n\nline2\n\n\n")
    add("  \n  \n  ")

    # --- contractions in various cases
    for suf in ["s", "t", "re", "ve", "m", "ll", "d"]:
        add("it'" + suf)
        add("IT'" + suf.upper())
        add("It'" + suf[0].upper() + suf[1:])
        add("' " + suf)
        add("x '" + suf + " y")
    for s in ["don't", "DON'T", "Don'T", "we're", "WE'RE", "we'Re", "they've", "I'm", "I'M",
              "you'll", "YOU'LL", "she'd", "'twas", "rock 'n' roll", "''", "'''", "' '",
              "O'Reilly's", "l'homme", "can't've", "y'all'd've", "it’s (curly)", "'S'T'RE",
              "'1", "'\u00e9", "''s", "'s's's"]:
        add(s)

    # --- digits and numbers
    for s in ["0", "1", "12", "123", "1234", "12345", "123456", "1234567", "3.14159",
              "1,000,000", "1 000 000", "-42", "+7", "1e10", "0x1F", "0b1010", "2024-01-31",
              "12:34:56", "$100.00", "€9,99", "50%", "1/2", "v1.2.3", "phone: +1 (555) 123-4567",
              "3rd", "21st century", "99 bottles", "007", "١٢٣٤٥", "१२३४५", "一二三", "½ ¾ ⅓",
              "² ³ ¹", "Ⅻ ⅻ", "①②③", "９８７", "𝟘𝟙𝟚",
              "314159265358979323846264338327950288419716939937510",
              "a1b2c3", "x=1+2*3", "1.0e-5f", "  42  "]:
        add(s)

    # --- CJK
    for s in ["你好", "你好世界", "我爱北京天安门。", "日本語のテキスト", "こんにちは、世界！",
              "カタカナ ひらがな 漢字", "한국어 텍스트", "안녕하세요", "中文，标点。符号！",
              "漢字とKanji混在", "「引用」『二重』", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ", "𠀀𠀁𠀂 (Ext B)",
              "中 文 空 格", "龍の子"]:
        add(s)

    # --- emoji, ZWJ, skin tones, flags, keycaps
    for s in ["😀", "😀😃😄", "Hello 😀 world", "👍", "👍🏻👍🏼👍🏽👍🏾👍🏿", "👋🏽 hi",
              "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏽‍🚀", "🏳️‍🌈", "🏴‍☠️", "❤️", "❤️‍🔥", "🇺🇸", "🇯🇵🇫🇷🇩🇪",
              "🇺🇸🇬🇧 flags", "1️⃣2️⃣#️⃣", "☺", "☺️", "✔️✅", "🤖🎉🔥💯", "emoji😀at😀joins",
              "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🫠🫶", "😀 😀  😀"]:
        add(s)

    # --- combining marks and accents
    for s in ["café", "cafe\u0301", "naïve", "nai\u0308ve", "Ångström", "A\u030angstro\u0308m",
              "e\u0301\u0302\u0303\u0304", "Z\u0351\u0342a\u036ble\u0317go\u035c",
              "ñ vs n\u0303", "ﬁ ligature", "Œuvre", "straße", "İstanbul", "ß ẞ", "Ǆ ǅ ǆ",
              "\u0301 leading mark", "ä\u0308\u0308", "Việt Nam", "Crème brûlée"]:
        add(s)

    # --- RTL, Indic, Thai and other scripts
    for s in ["مرحبا بالعالم", "السلام عليكم", "العربية: ١٢٣", "שלום עולם", "עברית עם ניקוד: שָׁלוֹם",
              "mixed English עברית text", "\u202eRTL override\u202c", "नमस्ते दुनिया", "हिन्दी",
              "क्षत्रिय", "สวัสดีครับ", "ภาษาไทย", "ไม่ได้", "Ελληνικά", "Привет, мир!",
              "Здравствуйте", "Українська мова", "ქართული", "Հայերեն", "አማርኛ", "தமிழ்",
              "বাংলা", "ગુજરાતી", "ಕನ್ನಡ", "മലയാളം", "සිංහල", "ລາວ", "ខ្មែរ", "မြန်မာ",
              "བོད་ཡིག", "ᠮᠣᠩᠭᠣᠯ", "Tiếng Việt", "Türkçe", "Polski: zażółć gęślą jaźń"]:
        add(s)

    # --- code
    add("def hello(name):\n    print(f\"Hello, {name}!\")\n    return None\n")
    add("for i in range(10):\n\tif i % 2 == 0:\n\t\tcontinue\n")
    add("import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\n")
    add("class Foo(Bar):\n    \"\"\"Docstring.\"\"\"\n    pass\n")
    add("lambda x: x**2 if x>0 else -x")
    add("#include <stdio.h>\nint main(void) {\n    printf(\"hi\\n\");\n    return 0;\n}\n")
    add("static inline uint32_t f(const uint8_t *p) { return p[0] | (p[1] << 8); }")
    add("for (int i = 0; i < n; ++i) { a[i] += b[i] * c; }")
    add("#define MAX(a, b) ((a) > (b) ? (a) : (b))")
    add("x->y = &z; *p++ = '\\0'; // comment")
    add("/* block\n * comment */")
    add('{"name": "Alice", "age": 30, "tags": ["a", "b"], "ok": true, "n": null}')
    add('{\n  "key": "value",\n  "nested": {"a": [1, 2, 3]}\n}')
    add('[{"id":1},{"id":2}]')
    add("<html><body><div class=\"x\">Hi</div></body></html>")
    add("SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';")
    add("fn main() { let v: Vec<u8> = vec![1, 2, 3]; println!(\"{:?}\", v); }")
    add("const f = async () => { await fetch('/api'); };")
    add("$ ls -la | grep '\\.c$' && echo done")
    add("if [[ -z \"$VAR\" ]]; then exit 1; fi")
    add("a == b != c <= d >= e && f || !g")
    add("x <<= 2; y >>= 3; z ^= ~w;")
    add("```python\nprint('hi')\n```")
    add("key: value\nlist:\n  - item1\n  - item2\n")
    add("\\begin{equation} E = mc^2 \\end{equation}")

    # --- URLs, paths, e-mail
    for s in ["https://www.example.com/path/to/page?query=1&x=y#frag",
              "http://localhost:8080/api/v1/users", "ftp://ftp.example.org/pub/file.tar.gz",
              "www.google.com", "user@example.com", "mailto:someone@x.org",
              "/usr/local/bin/python3", "C:\\Windows\\System32\\cmd.exe", "../relative/./path",
              "https://en.wikipedia.org/wiki/Tokenization_(lexical_analysis)",
              "git@github.com:org/repo.git", "192.168.0.1:443", "[::1]:80"]:
        add(s)

    # --- punctuation runs
    for s in ["...", "!!!", "???", "?!?!", "!!!???...", "---", "***", "___", "===", "~~~",
              "((()))", "[[]]", "{{}}", "<<>>", "<|>", "@@@", "###", "$$$", "%%%", "^^^",
              "&&&", "|||", "\\\\", "//", ";;;", ":::", ",,,", "'\"'\"", "``", "´´", "‘’“”",
              "«»", "—–-", "…", "•·", "¡¿", "§¶", "©®™", "°±×÷", "→←↑↓", "∀∃∈∉", "≤≥≠≈",
              "Wait... what?!", "Hello!!! How are you???", "a.b.c.d", "a-b_c", "-- \n--",
              ". . .", " .", " ?", " !", " ,", "x , y . z ! w ?"]:
        add(s)

    # --- invalid-looking and odd text
    for s in ["\ufffd", "a\ufffdb", "\ufeffBOM", "zero\u200bwidth", "soft\u00adhyphen",
              "\u200d", "\u200c\u200d", "\ue000 private use", "\U000f0000", "\U0010ffff",
              "\u0378 unassigned", "\U0001fbff", "\U000e0001 tag", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
              "ab" * 30, "The the THE tHe", "ALLCAPSWORDSRUNTOGETHER", "camelCaseWords",
              "snake_case_words", "kebab-case-words", "MiXeD CaSe", "x" * 100,
              "Ｈｅｌｌｏ", "ℌ𝔢𝔩𝔩𝔬", "𝐇𝐞𝐥𝐥𝐨", "h̶e̶l̶l̶o̶"]:
        add(s)

    # --- special-token text (parse_special matters here)
    for s in ["<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
              "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
              "<|im_start|>", "<|im_end|>", "<|endoftext|>", "text<|endoftext|>text",
              "<|im_start|><|im_end|>", "<|im_start|> <|im_end|>", "<|im_start|>\n\n<|im_end|>",
              "< |im_start| >", "<|im_start", "im_start|>", "<<|im_start|>>", "<|im_end|><|im_end|>",
              "<|IM_START|>", "<repo_name>x<file_sep>y", "<filename>a.py\n<gh_stars>10",
              "<jupyter_code>print(1)<jupyter_output>1", "<issue_start>bug<issue_closed>",
              "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
              "<start_of_turn>user\nWrite a poem.<end_of_turn>\n", "<end_of_turn>", "<eos>", "<pad>",
              "<unk>", "<mask>", "<s>", "</s>", "<unused0>", "<unused99>", "<start_of_image>",
              "[multimodal]", "<start_of_turn>", " <start_of_turn> ", "<b>bold</b>", "<br>",
              "<table><tr><td>1</td></tr></table>", "<0x41>", "<0x0A>", "▁", "▁▁", "▁hello",
              "hello▁world", "<|im_start|>user\n你好😀<|im_end|>"]:
        add(s)

    # --- mixed
    for s in ["Hello, 世界! 🌍 Привет 123 مرحبا",
              "The price is $42.99 (incl. 20% VAT) — see https://shop.example.com/item?id=7.",
              "Q: What's 2+2?\nA: It's 4.",
              "Dear Sir/Madam,\n\nI am writing to...\n\nBest regards,\nJohn",
              "e.g. i.e. etc. Mr. Dr. U.S.A.",
              "Tab\tand  double  spaces\tmixed \t \t",
              "email me at a.b+c@d-e.co.uk!",
              "#hashtag @mention $TICKER",
              "2^10 = 1024; sqrt(2) ≈ 1.41421",
              "“Smart quotes” and ‘single’ ones",
              "A\u00b7B\u2022C",
              "Ünïcödé tëxt wïth dïäcrïtïcs",
              "  mixed\n\t indentation\n    here",
              "word1 word2\tword3\nword4\r\nword5"]:
        add(s)

    # --- a longer paragraph
    add(("Lorem ipsum dolor sit amet, consectetur adipiscing elit. Sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
         "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.\n\n") * 3)

    out = [s.encode("utf-8") for s in c]

    # --- invalid UTF-8 (only sequences llama.cpp survives: it aborts on lead
    # bytes F5..F7 and on F4 90.. followed by continuations)
    for b in [b"\x80", b"\xbf", b"\xc0", b"\xc1\x81", b"\xc3", b"\xc3(", b"a\xc3", b"\xe2\x82",
              b"\xe2\x82(", b"\xe2(\xa1", b"\xf0\x9f\x98", b"\xf0\x9f\x98a", b"\xf0\x9f",
              b"\xff", b"\xfe\xff", b"\xf8\x88\x80\x80\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf",
              b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"abc\x80def", b"\x80\x80\x80",
              b"hello \xff world", b"\xc3\xa9\xc3", b"<|im_start|>\xff<|im_end|>",
              b"\xe4\xbd\xa0\xe5\xa5", b"123\x804\x805", b" \x80 ", b"\xa0\xa1"]:
        out.append(b)

    seen = set()
    uniq = []
    for b in out:
        if b not in seen:
            seen.add(b)
            uniq.append(b)
    return uniq


class Vocab:
    def __init__(self, path):
        # Keep the callback object alive: llama.cpp calls it later.
        self._log = L.llama_log_callback(lambda *a: None)
        L.llama_log_set(self._log, ctypes.c_void_p())
        L.llama_backend_init()
        p = L.llama_model_default_params()
        p.vocab_only = True
        self.model = L.llama_model_load_from_file(path.encode(), p)
        if not self.model:
            sys.exit("cannot load " + path)
        self.vocab = L.llama_model_get_vocab(self.model)

    def tokenize(self, b, add_special, parse_special):
        n = len(b) + 8
        while True:
            buf = (L.llama_token * n)()
            r = L.llama_tokenize(self.vocab, b, len(b), buf, n, add_special, parse_special)
            if r >= 0:
                return list(buf[:r])
            n = -r

    def strips_space(self):
        """True when llama.cpp prepends a space (SPM with add_space_prefix)."""
        if L.llama_vocab_type(self.vocab) != L.LLAMA_VOCAB_TYPE_SPM:
            return False
        buf = ctypes.create_string_buffer(64)
        n = L.llama_model_meta_val_str(self.model, b"tokenizer.ggml.add_space_prefix", buf, 64)
        return n < 0 or buf.value == b"true"

    def pieces(self, ids, special):
        out = b""
        for i, t in enumerate(ids):
            n = 256
            while True:
                buf = ctypes.create_string_buffer(n)
                lstrip = 1 if i == 0 and self.strips_space() else 0
                r = L.llama_token_to_piece(self.vocab, t, buf, n, lstrip, special)
                if r >= 0:
                    out += buf.raw[:r]
                    break
                n = -r + 1
        return out

    def detokenize(self, ids, special):
        arr = (L.llama_token * max(1, len(ids)))(*ids)
        n = 64 + 64 * len(ids)
        while True:
            buf = ctypes.create_string_buffer(n)
            r = L.llama_detokenize(self.vocab, arr, len(ids), buf, n, False, special)
            if r >= 0:
                return buf.raw[:r]
            n = -r + 1


def copy_with_pre(src, dst, pre):
    """Writes dst: src's metadata (no tensors) with tokenizer.ggml.pre = pre."""
    import gguf
    r = gguf.GGUFReader(src)
    f = r.fields["general.architecture"]
    w = gguf.GGUFWriter(dst, bytes(f.parts[f.data[0]]).decode())
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        t = f.types[0]
        if k == "tokenizer.ggml.pre":
            w.add_string(k, pre)
        elif t == gguf.GGUFValueType.ARRAY:
            et = f.types[1]
            if et == gguf.GGUFValueType.STRING:
                vals = [bytes(f.parts[i]) for i in f.data]
            else:
                vals = [f.parts[i].tolist()[0] for i in f.data]
            w.add_key_value(k, vals, t, sub_type=et)
        elif t == gguf.GGUFValueType.STRING:
            w.add_key_value(k, bytes(f.parts[f.data[0]]), t)
        else:
            w.add_key_value(k, f.parts[f.data[0]].tolist()[0], t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    import os
    import tempfile
    args = sys.argv[1:]
    pre = None
    if len(args) == 4 and args[0] == "--pre":
        pre = args[1]
        args = args[2:]
    if len(args) != 2:
        sys.exit(__doc__)
    model, out = args
    if pre:
        fd, tmp = tempfile.mkstemp(suffix=".gguf")
        os.close(fd)
        copy_with_pre(model, tmp, pre)
        v = Vocab(tmp)
        os.unlink(tmp)
    else:
        v = Vocab(model)
    n_vocab = L.llama_vocab_n_tokens(v.vocab)
    eog = [i for i in range(n_vocab) if L.llama_vocab_is_eog(v.vocab, i)]
    cases = corpus()
    with open(out, "w", encoding="ascii") as f:
        f.write("# tokenizer fixtures from llama.cpp (llama-cpp-python %s), written by\n"
                % L.__version__)
        f.write("# scripts/make_tok_fixtures.py for %s; fields: text ids0 ids1 ids2 det0 det1 utf1\n"
                % model.split("/")[-1])
        if pre:
            f.write("# pre: %s\n" % pre)
        f.write("# n_vocab: %d\n" % n_vocab)
        f.write("# bos: %d\n# eos: %d\n" % (L.llama_vocab_bos(v.vocab), L.llama_vocab_eos(v.vocab)))
        f.write("# eog: %s\n" % ",".join(map(str, eog)))
        for k, b in enumerate(cases):
            ids0 = v.tokenize(b, False, False)
            ids1 = v.tokenize(b, False, True)
            ids2 = v.tokenize(b, True, True)
            det0 = v.detokenize(ids0, False)
            det1 = v.detokenize(ids1, True)
            utf1 = v.pieces(ids1, True).decode("utf-8", "replace").encode("utf-8")
            f.write("# case %d: %s\n" % (k, json.dumps(b.decode("utf-8", "backslashreplace"))))
            f.write("\t".join([b.hex(), ",".join(map(str, ids0)), ",".join(map(str, ids1)),
                               ",".join(map(str, ids2)), det0.hex(), det1.hex(), utf1.hex()]) + "\n")
    print("%s: %d cases" % (out, len(cases)))


if __name__ == "__main__":
    main()
