/*
 * txsipua.sip._speedups: the optional C accelerator of the SIP parser.
 *
 * The pure Python parser (txsipua/sip/parse.py, values.py) is the reference.  Each
 * entry point does what it does for the common shapes only and declines
 * (None / NotImplemented) everything else, so the pure code decides every odd or
 * malformed input and raises every error; tests/sip/test_accelerator_differential.py
 * checks both give equal results on generated and mutated input (hypothesis).
 *
 * parse_head(data, end, names): the header-section split (do_split) plus the
 * checks parse_message makes of a common message (below).
 *
 * do_split, the split, for data[:end]:
 * Input:  data  bytes of one message;
 *         end   offset of the CRLF CRLF ending the header section (0 < end <= len(data) - 4);
 *         names dict: header name as written before the colon (trailing SP/HT included)
 *               -> (lookup key, canonical name), holding validated names only; a
 *               value that is not a tuple of two with a str key is a TypeError.
 * Output: (start line, fields, keys) where fields is a list of
 *         (lookup key, canonical name, value stripped of SP/HT) and keys the list of
 *         lookup keys, or None when the fast path does not apply:
 *         - a control byte (NUL included) in data[:end], or text that is not UTF-8;
 *         - a CR not followed by LF or an LF not preceded by CR (bare line ends);
 *         - an empty start line, or an empty last line (data[:end] ending with CRLF,
 *           which cannot happen when end is data.find(b"\r\n\r\n"));
 *         - a header line without a colon, or whose name (as written) is not a key
 *           of `names`; a folded line before any field.
 *         Folded lines (starting with SP or HT) are joined to the previous value
 *         with one SP, as the pure code does.
 *
 * Memory safety: every read is of data[0:end + 4] (a bytes object, bounds checked
 * against end), nothing is written to it; every object created is owned by the
 * result or released on the error path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#ifdef Py_LIMITED_API
/* The stable ABI (abi3 wheels, setup.py): the limited API has no macros that reach
 * into objects, so each is mapped to its function form.  A str is read through
 * PyUnicode_AsUTF8AndSize, which for an ASCII str (the only kind the fast paths read)
 * returns the str's own storage without copying; a str that is not ASCII is
 * reported as such and left to the pure code, as in the full-API build. */
#define PyBytes_AS_STRING(o) PyBytes_AsString(o)
#define PyBytes_GET_SIZE(o) PyBytes_Size(o)
#define PyList_GET_SIZE(o) PyList_Size(o)
#define PyList_GET_ITEM(o, i) PyList_GetItem((o), (i))
#define PyTuple_GET_SIZE(o) PyTuple_Size(o)
#define PyTuple_GET_ITEM(o, i) PyTuple_GetItem((o), (i))
#define PyTuple_SET_ITEM(o, i, v) PyTuple_SetItem((o), (i), (v))
#define PyUnicode_GET_LENGTH(o) PyUnicode_GetLength(o)
#define PyUnicode_READY(o) 0

static int
txs_is_ascii(PyObject *str)
{
    Py_ssize_t size;
    if (PyUnicode_AsUTF8AndSize(str, &size) == NULL) {
        PyErr_Clear();  /* not encodable (lone surrogates): not ASCII either */
        return 0;
    }
    return size == PyUnicode_GetLength(str);
}
#define PyUnicode_IS_ASCII(o) txs_is_ascii(o)
#define PyUnicode_DATA(o) ((const void *)PyUnicode_AsUTF8AndSize((o), NULL))
#define PyUnicode_1BYTE_DATA(o) ((const unsigned char *)PyUnicode_AsUTF8AndSize((o), NULL))
#define Py_XSETREF(dst, src) do { PyObject *txs_old = (PyObject *)(dst); (dst) = (src); Py_XDECREF(txs_old); } while (0)
#endif

/* 1 for the bytes the fast path accepts inside a line: HT, printable ASCII, and
   bytes >= 0x80 (UTF-8, checked when decoded) */
static unsigned char line_ok[256];
static PyObject *space;  /* " " */

/* buf[0:n] as str: ASCII fast, else strict UTF-8 (NULL with UnicodeDecodeError set) */
static PyObject *
text(const char *buf, Py_ssize_t n, int high)
{
    return high ? PyUnicode_DecodeUTF8(buf, n, "strict") : PyUnicode_DecodeASCII(buf, n, NULL);
}

/* narrow [*s, *e) by the SP and HT at both ends */
static void
strip(const char *buf, Py_ssize_t *s, Py_ssize_t *e)
{
    while (*s < *e && (buf[*s] == ' ' || buf[*s] == '\t')) {
        (*s)++;
    }
    while (*e > *s && (buf[*e - 1] == ' ' || buf[*e - 1] == '\t')) {
        (*e)--;
    }
}

/* A memo of names -> entries of the last `names` dict seen, so that a known name
   costs no str allocation or hashing; a name's entry never changes once in the
   dict (the dict only grows), so a slot stays right until the dict changes.
   256 slots by FNV-1a hash of the name bytes; a collision replaces the slot.
   Every filled slot holds an entry of memo_dict: a switch to another dict clears
   them all, and memo_put stores only for the current memo_dict.  The memo holds
   strong references (memo_dict and the entries), so no dict freed and another
   allocated at the same address can be mistaken for it; an entry changed in
   place would be missed, which parse._NAMES never does.  A name deleted from
   the dict (parse._NAMES is cleared and re-seeded when full) may still be
   answered from its slot: harmless there, because an entry depends only on the
   name it was validated for. */
#define MEMO_SLOTS 256
#define MEMO_MAXLEN 40
typedef struct {
    Py_ssize_t len;  /* 0: empty slot */
    char name[MEMO_MAXLEN];
    PyObject *entry;  /* strong */
} memo_slot;
static memo_slot memo[MEMO_SLOTS];
static PyObject *memo_dict;  /* strong: the dict the slots came from */

static unsigned int
memo_hash(const char *p, Py_ssize_t n)
{
    unsigned int h = 2166136261u;
    for (Py_ssize_t k = 0; k < n; k++) {
        h = (h ^ (unsigned char)p[k]) * 16777619u;
    }
    return h & (MEMO_SLOTS - 1);
}

static PyObject *
memo_get(PyObject *names, const char *p, Py_ssize_t n)
{
    if (names != memo_dict) {
        /* memo_dict first: a release below that runs code calling parse_head
           leaves only slots of whatever memo_dict then is */
        PyObject *old = memo_dict;
        Py_INCREF(names);
        memo_dict = names;
        /* every slot emptied before any entry is released: a release can run a
           finalizer calling parse_head with this dict, which must find no slot
           of the old one */
        PyObject *entries[MEMO_SLOTS];
        for (int k = 0; k < MEMO_SLOTS; k++) {
            memo[k].len = 0;
            entries[k] = memo[k].entry;
            memo[k].entry = NULL;
        }
        for (int k = 0; k < MEMO_SLOTS; k++) {
            Py_XDECREF(entries[k]);
        }
        Py_XDECREF(old);
        return NULL;
    }
    if (n <= 0 || n > MEMO_MAXLEN) {
        return NULL;
    }
    memo_slot *slot = &memo[memo_hash(p, n)];
    if (slot->len == n && memcmp(slot->name, p, (size_t)n) == 0) {
        return slot->entry;
    }
    return NULL;
}

static void
memo_put(PyObject *names, const char *p, Py_ssize_t n, PyObject *entry)
{
    /* names is not memo_dict when the lookup that found entry ran Python code (a
       key's __eq__) that called parse_head with another dict: entry must not go
       into that dict's memo */
    if (names != memo_dict || n <= 0 || n > MEMO_MAXLEN) {
        return;
    }
    memo_slot *slot = &memo[memo_hash(p, n)];
    Py_INCREF(entry);
    Py_XSETREF(slot->entry, entry);
    memcpy(slot->name, p, (size_t)n);
    slot->len = n;
}

/* None, with no exception set (start, fields, keys not yet created) */
static PyObject *
refused(void)
{
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            return NULL;
        }
        PyErr_Clear();
    }
    Py_RETURN_NONE;
}

/* the split: (start, fields, keys), None, or NULL with an exception */
static PyObject *
do_split(PyObject *data, Py_ssize_t end, PyObject *names)
{
    const char *buf = PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (end <= 0 || end > size) {
        PyErr_SetString(PyExc_ValueError, "end out of range");
        return NULL;
    }
    if (end >= 2 && buf[end - 2] == '\r' && buf[end - 1] == '\n') {
        /* data[:end] ends with a line end, so its last line is empty: an error of
           the pure code (never the case when end is the first CRLF CRLF) */
        Py_RETURN_NONE;
    }

    /* the start line: up to the first CR */
    Py_ssize_t i = 0;
    int high = 0;
    while (i < end && line_ok[(unsigned char)buf[i]]) {
        high |= (unsigned char)buf[i] & 0x80;
        i++;
    }
    if (i == 0) {
        Py_RETURN_NONE;  /* empty start line */
    }
    if (i < end && !(buf[i] == '\r' && i + 1 < end && buf[i + 1] == '\n')) {
        Py_RETURN_NONE;  /* a control byte, bare CR or LF */
    }
    PyObject *start = text(buf, i, high);
    if (start == NULL) {
        return refused();
    }
    PyObject *fields = PyList_New(0);
    PyObject *keys = PyList_New(0);
    if (fields == NULL || keys == NULL) {
        goto error;
    }
    i += 2;  /* past CRLF; when i > end there are no header lines */
    while (i < end) {
        Py_ssize_t line = i;
        Py_ssize_t colon = -1;
        high = 0;
        while (i < end && line_ok[(unsigned char)buf[i]]) {
            if (colon < 0 && buf[i] == ':') {
                colon = i;
            }
            high |= (unsigned char)buf[i] & 0x80;
            i++;
        }
        Py_ssize_t eol = i;
        if (i < end) {
            if (!(buf[i] == '\r' && i + 1 < end && buf[i + 1] == '\n')) {
                goto refuse;  /* a control byte, bare CR or LF */
            }
            i += 2;
        }
        if (eol > line && (buf[line] == ' ' || buf[line] == '\t')) {
            /* a folded line (RFC 3261 §7.3.1): joined to the previous field's
               value with one SP, both stripped of SP/HT */
            Py_ssize_t n = PyList_GET_SIZE(fields);
            if (n == 0) {
                goto refuse;  /* a continuation before any field */
            }
            Py_ssize_t cs = line, ce = eol;
            strip(buf, &cs, &ce);
            if (cs == ce) {
                continue;  /* (value + " ").strip() is the value */
            }
            PyObject *cont = text(buf + cs, ce - cs, high);
            if (cont == NULL) {
                goto refuse_clear;
            }
            PyObject *last = PyList_GET_ITEM(fields, n - 1);  /* borrowed */
            PyObject *old = PyTuple_GET_ITEM(last, 2);
            PyObject *joined;
            if (PyUnicode_GET_LENGTH(old) == 0) {
                joined = cont;  /* (" " + cont).strip() */
            }
            else {
                PyObject *sp = PyUnicode_Concat(old, space);
                joined = sp == NULL ? NULL : PyUnicode_Concat(sp, cont);
                Py_XDECREF(sp);
                Py_DECREF(cont);
                if (joined == NULL) {
                    goto error;
                }
            }
            PyObject *field = PyTuple_Pack(3, PyTuple_GET_ITEM(last, 0),
                                           PyTuple_GET_ITEM(last, 1), joined);
            Py_DECREF(joined);
            if (field == NULL) {
                goto error;
            }
            if (PyList_SetItem(fields, n - 1, field) < 0) {  /* steals field */
                goto error;
            }
            continue;
        }
        if (colon < 0) {
            goto refuse;  /* an empty line, a line without colon */
        }
        /* entry is held (strong) while in use: an allocation below can start a
           collection whose finalizers delete it from names and switch the memo */
        PyObject *entry = memo_get(names, buf + line, colon - line);  /* borrowed */
        if (entry != NULL) {
            Py_INCREF(entry);
        }
        else {
            PyObject *name = text(buf + line, colon - line, high);
            if (name == NULL) {
                goto refuse_clear;
            }
            entry = PyDict_GetItemWithError(names, name);  /* borrowed */
            Py_DECREF(name);
            if (entry == NULL) {
                if (PyErr_Occurred()) {
                    goto error;
                }
                goto refuse;  /* a name not seen (validated) before */
            }
            Py_INCREF(entry);  /* before memo_put, whose release of a slot can run code */
            memo_put(names, buf + line, colon - line, entry);
        }
        /* a str key: parse_head reads the keys as str (PyUnicode_IS_ASCII/DATA) */
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2
            || !PyUnicode_Check(PyTuple_GET_ITEM(entry, 0))) {
            PyErr_SetString(PyExc_TypeError,
                            "names values must be (str key, canonical) tuples");
            Py_DECREF(entry);
            goto error;
        }
        Py_ssize_t vs = colon + 1, ve = eol;
        strip(buf, &vs, &ve);
        PyObject *value = text(buf + vs, ve - vs, high);
        if (value == NULL) {
            Py_DECREF(entry);
            goto refuse_clear;
        }
        PyObject *key = PyTuple_GET_ITEM(entry, 0);
        PyObject *field = PyTuple_Pack(3, key, PyTuple_GET_ITEM(entry, 1), value);
        Py_DECREF(value);
        if (field == NULL) {
            Py_DECREF(entry);
            goto error;
        }
        /* three str: never part of a cycle, so kept out of the collector's lists
           (what CPython does to such a tuple at its first collection anyway) */
        if (PyUnicode_CheckExact(key) && PyUnicode_CheckExact(PyTuple_GET_ITEM(entry, 1))) {
            PyObject_GC_UnTrack(field);
        }
        int r = PyList_Append(fields, field);
        Py_DECREF(field);
        if (r == 0) {
            r = PyList_Append(keys, key);
        }
        Py_DECREF(entry);
        if (r < 0) {
            goto error;
        }
    }
    PyObject *result = PyTuple_Pack(3, start, fields, keys);
    Py_DECREF(start);
    Py_DECREF(fields);
    Py_DECREF(keys);
    return result;

refuse_clear:
    /* text that is not UTF-8: the pure code raises the ParseError */
    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        goto error;
    }
    PyErr_Clear();
refuse:
    Py_DECREF(start);
    Py_DECREF(fields);
    Py_DECREF(keys);
    Py_RETURN_NONE;

error:
    Py_DECREF(start);
    Py_XDECREF(fields);
    Py_XDECREF(keys);
    return NULL;
}

/* ------------------------------------------------------------ parse_head */

/* the request methods parse_head accepts in a CSeq (any other: the pure code) */
static const char *const known_methods[] = {
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
    "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE", NULL,
};

static int
is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
           || (c != 0 && strchr("-.!%*_+`'~", c) != NULL);
}

static int
ascii_eq(PyObject *str, const char *lit)
{
    size_t m = strlen(lit);
    return PyUnicode_IS_ASCII(str) && (size_t)PyUnicode_GET_LENGTH(str) == m
           && memcmp(PyUnicode_DATA(str), lit, m) == 0;
}

/* value of a run of 1..max ASCII digits s[0:n], or -1 */
static long long
digits(const char *s, Py_ssize_t n, Py_ssize_t max)
{
    if (n < 1 || n > max) {
        return -1;
    }
    long long v = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') {
            return -1;
        }
        v = v * 10 + (s[k] - '0');
    }
    return v;
}

static PyObject *
parse_head(PyObject *self, PyObject *args)
{
    PyObject *data, *names;
    Py_ssize_t end;
    if (!PyArg_ParseTuple(args, "O!nO!:parse_head", &PyBytes_Type, &data, &end,
                          &PyDict_Type, &names)) {
        return NULL;
    }
    PyObject *split = do_split(data, end, names);
    if (split == NULL || split == Py_None) {
        return split;
    }
    PyObject *start = PyTuple_GET_ITEM(split, 0);
    PyObject *fields = PyTuple_GET_ITEM(split, 1);
    PyObject *keys = PyTuple_GET_ITEM(split, 2);
    PyObject *a = NULL, *b = NULL, *result = NULL;

    /* mandatory fields: Via at least once; From, To, Call-ID, CSeq exactly once;
       Content-Length at most once (anything else: the pure code's checks) */
    Py_ssize_t n = PyList_GET_SIZE(keys);
    int vias = 0, froms = 0, tos = 0, cids = 0, cseqs = 0, cls = 0;
    PyObject *cseq_text = NULL, *cl_text = NULL;  /* borrowed */
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *key = PyList_GET_ITEM(keys, k);
        if (!PyUnicode_IS_ASCII(key)) {
            continue;
        }
        const char *kd = (const char *)PyUnicode_DATA(key);
        switch (kd[0]) {
        case 'v':
            vias += ascii_eq(key, "via");
            break;
        case 'f':
            froms += ascii_eq(key, "from");
            break;
        case 't':
            tos += ascii_eq(key, "to");
            break;
        case 'c':
            if (ascii_eq(key, "call-id")) {
                cids++;
            }
            else if (ascii_eq(key, "cseq")) {
                cseqs++;
                cseq_text = PyTuple_GET_ITEM(PyList_GET_ITEM(fields, k), 2);
            }
            else if (ascii_eq(key, "content-length")) {
                cls++;
                cl_text = PyTuple_GET_ITEM(PyList_GET_ITEM(fields, k), 2);
            }
            break;
        }
    }
    if (vias < 1 || froms != 1 || tos != 1 || cids != 1 || cseqs != 1 || cls > 1
        || !PyUnicode_IS_ASCII(cseq_text)) {
        goto refuse;
    }

    /* CSeq: 1..10 digits < 2**32, one SP, a known method */
    const char *cs = (const char *)PyUnicode_DATA(cseq_text);
    Py_ssize_t csn = PyUnicode_GET_LENGTH(cseq_text);
    const char *sp = memchr(cs, ' ', (size_t)csn);
    if (sp == NULL) {
        goto refuse;
    }
    long long seq = digits(cs, sp - cs, 10);
    if (seq < 0 || seq >= 4294967296LL) {
        goto refuse;
    }
    const char *cm = sp + 1;
    Py_ssize_t cmn = csn - (cm - cs);
    int known = 0;
    for (int k = 0; known_methods[k] != NULL; k++) {
        if ((size_t)cmn == strlen(known_methods[k])
            && memcmp(cm, known_methods[k], (size_t)cmn) == 0) {
            known = 1;
            break;
        }
    }
    if (!known) {
        goto refuse;
    }

    /* Content-Length: 1..9 digits, and that many body bytes received */
    long long length = -1;
    if (cl_text != NULL) {
        if (!PyUnicode_IS_ASCII(cl_text)) {
            goto refuse;
        }
        length = digits((const char *)PyUnicode_DATA(cl_text), PyUnicode_GET_LENGTH(cl_text), 9);
        if (length < 0 || length > PyBytes_GET_SIZE(data) - (end + 4)) {
            goto refuse;
        }
    }

    /* the start line: "SIP/2.0 DDD[ reason]" or "token SP uri-with-colon SP SIP/2.0" */
    if (!PyUnicode_IS_ASCII(start)) {
        goto refuse;  /* a UTF-8 Request-URI or reason: the pure code */
    }
    const char *st = (const char *)PyUnicode_DATA(start);
    Py_ssize_t stn = PyUnicode_GET_LENGTH(start);
    int request;
    if (stn >= 11 && memcmp(st, "SIP/2.0 ", 8) == 0) {
        long long status = digits(st + 8, 3, 3);
        if (status < 100 || status > 699 || (stn > 11 && st[11] != ' ')) {
            goto refuse;
        }
        Py_ssize_t rs = stn > 11 ? 12 : 11, re = stn;
        strip(st, &rs, &re);
        a = PyLong_FromLongLong(status);
        b = PyUnicode_Substring(start, rs, re);
        request = 0;
    }
    else {
        Py_ssize_t m = 0;
        while (m < stn && is_token_char((unsigned char)st[m])) {
            m++;
        }
        if (m == 0 || m >= stn || st[m] != ' ') {
            goto refuse;
        }
        Py_ssize_t u = m + 1, ue = u;
        int colon = 0;
        while (ue < stn && st[ue] != ' ' && st[ue] != '\t') {
            colon |= st[ue] == ':';
            ue++;
        }
        if (!colon || stn - ue != 8 || memcmp(st + ue, " SIP/2.0", 8) != 0) {
            goto refuse;
        }
        if (m != cmn || memcmp(st, cm, (size_t)m) != 0) {
            goto refuse;  /* CSeq method differs from the request's: the pure code errs */
        }
        a = PyUnicode_Substring(start, 0, m);
        b = PyUnicode_Substring(start, u, ue);
        request = 1;
    }
    if (a == NULL || b == NULL) {
        goto error;
    }
    PyObject *method = PyUnicode_Substring(cseq_text, cm - cs, csn);
    if (method == NULL) {
        goto error;
    }
    result = Py_BuildValue("(OOOOOLNn)", fields, keys, request ? Py_True : Py_False, a, b,
                           seq, method, (Py_ssize_t)length);
    Py_DECREF(split);
    Py_DECREF(a);
    Py_DECREF(b);
    return result;

refuse:
    Py_DECREF(split);
    Py_RETURN_NONE;

error:
    Py_DECREF(split);
    Py_XDECREF(a);
    Py_XDECREF(b);
    return NULL;
}

/* is c a character tag_param declines (non-whitespace controls, CR, LF, DEL): the pure
   code's \s and str.strip() read some controls as whitespace, so they go there */
static int
tag_odd_char(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* s[a:b] stripped of SP and HTAB */
static void
tag_strip(const char *s, Py_ssize_t *a, Py_ssize_t *b)
{
    while (*a < *b && (s[*a] == ' ' || s[*a] == '\t')) {
        (*a)++;
    }
    while (*b > *a && (s[*b - 1] == ' ' || s[*b - 1] == '\t')) {
        (*b)--;
    }
}

static PyObject *
tag_param(PyObject *self, PyObject *value)
{
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "tag_param() takes a str");
        return NULL;
    }
    if (PyUnicode_READY(value) < 0) {
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(value)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    const char *s = (const char *)PyUnicode_DATA(value);
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    int has_lt = 0, has_quote_or_gt = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (tag_odd_char(c)) {
            Py_RETURN_NOTIMPLEMENTED;
        }
        has_lt |= c == '<';
        has_quote_or_gt |= c == '"' || c == '>';
    }
    /* the shape header_tag accepts, else the pure code decides (and raises):
       name-addr: SWS [ quoted-string SWS / words without < " > ] "<" *(not ">") ">" SWS [";" params]
       addr-spec: no '<', '"' or '>'; the parameters follow the first ';' */
    Py_ssize_t p = 0;  /* the parameters: s[p:n], empty when p == n */
    if (has_lt) {
        Py_ssize_t k = 0;
        while (k < n && (s[k] == ' ' || s[k] == '\t')) {
            k++;
        }
        if (k < n && s[k] == '"') {
            k++;
            while (k < n && s[k] != '"') {
                k += s[k] == '\\' ? 2 : 1;
            }
            if (k >= n) {
                Py_RETURN_NOTIMPLEMENTED;  /* unterminated quoted display name */
            }
            k++;
            while (k < n && (s[k] == ' ' || s[k] == '\t')) {
                k++;
            }
            if (k >= n || s[k] != '<') {
                Py_RETURN_NOTIMPLEMENTED;
            }
        }
        else {
            while (k < n && s[k] != '<') {
                if (s[k] == '"' || s[k] == '>') {
                    Py_RETURN_NOTIMPLEMENTED;
                }
                k++;
            }
        }
        /* s[k] == '<': the URI runs to the first '>' */
        k++;
        while (k < n && s[k] != '>') {
            k++;
        }
        if (k >= n) {
            Py_RETURN_NOTIMPLEMENTED;  /* unterminated <> */
        }
        k++;
        while (k < n && (s[k] == ' ' || s[k] == '\t')) {
            k++;
        }
        if (k < n && s[k] != ';') {
            Py_RETURN_NOTIMPLEMENTED;  /* text after the URI */
        }
        p = k;
    }
    else {
        if (has_quote_or_gt) {
            Py_RETURN_NOTIMPLEMENTED;
        }
        while (p < n && s[p] != ';') {
            p++;
        }
    }
    /* the parameters: ";"-separated name[=value], no quoted-string, no comma; the tag
       is answered only when named exactly once as "tag" with a non-empty value that
       SP/HTAB stripping does not change (odd spellings go to the pure code) */
    for (Py_ssize_t q = p; q < n; q++) {
        if (s[q] == '"' || s[q] == ',') {
            Py_RETURN_NOTIMPLEMENTED;
        }
    }
    Py_ssize_t tag_start = -1, tag_end = -1;
    Py_ssize_t k = p;
    while (k < n) {
        Py_ssize_t a = k + 1;  /* s[k] == ';' */
        Py_ssize_t b = a;
        while (b < n && s[b] != ';') {
            b++;
        }
        k = b;
        Py_ssize_t eq = a;
        while (eq < b && s[eq] != '=') {
            eq++;
        }
        Py_ssize_t na = a, nb = eq;
        tag_strip(s, &na, &nb);
        if (na == nb) {
            if (eq < b) {
                Py_RETURN_NOTIMPLEMENTED;  /* an empty name: the pure code raises */
            }
            continue;
        }
        if (nb - na == 3 && (s[na] | 0x20) == 't' && (s[na + 1] | 0x20) == 'a'
            && (s[na + 2] | 0x20) == 'g') {
            if (tag_start >= 0 || na != a || nb != eq || memcmp(s + na, "tag", 3) != 0 || eq == b) {
                Py_RETURN_NOTIMPLEMENTED;  /* repeated, spaced, odd case, no value */
            }
            tag_start = eq + 1;
            tag_end = b;
            if (tag_end == tag_start || s[tag_start] == ' ' || s[tag_start] == '\t'
                || s[tag_end - 1] == ' ' || s[tag_end - 1] == '\t') {
                Py_RETURN_NOTIMPLEMENTED;  /* empty, or strip() would change it */
            }
        }
    }
    if (tag_start < 0) {
        Py_RETURN_NONE;
    }
    return PyUnicode_Substring(value, tag_start, tag_end);
}

#include "_speedups_via.h"

static PyMethodDef methods[] = {
    {"parse_head", parse_head, METH_VARARGS,
     "parse_head(data: bytes, end: int, names: dict) -> tuple | None\n\n"
     "The header section data[:end] split into fields, plus the checks\n"
     "parse_message makes of a common message:\n"
     "(fields, keys, is_request, method or status, Request-URI or reason,\n"
     "CSeq number, CSeq method, Content-Length or -1), or None when any of\n"
     "them needs the pure code (a missing or repeated mandatory field, an\n"
     "unusual start line, CSeq or Content-Length, a short body, non-ASCII\n"
     "start line, a header section the split declines). Raises ValueError\n"
     "when end is out of range, TypeError when a names value used is not a\n"
     "(str key, canonical name) tuple."},
    {"tag_param", tag_param, METH_O,
     "tag_param(value: str) -> str | None | NotImplemented\n\n"
     "The tag parameter of a From/To value (RFC 3261 §19.3), read without\n"
     "the URI, for the shapes txsipua.sip.values.header_tag accepts: the\n"
     "tag, or None when the parameters hold no tag. NotImplemented when the\n"
     "pure code must decide: any shape it is not sure of (non-ASCII text,\n"
     "controls, an unterminated quoted display name or <>, text after the\n"
     "URI, '\"', '>' or '<' out of place, quotes or a comma in the\n"
     "parameters, an empty parameter name, a repeated, empty or oddly\n"
     "spelled tag, whitespace around it), so both paths give the same value\n"
     "or the same error. Raises TypeError for a value that is not a str."},
    {"via_parts", via_parts, METH_O,
     "via_parts(text: str) -> (transport, host, port, params) | NotImplemented\n\n"
     "The C path of txsipua.sip.values.Via.parse (RFC 3261 20.42) for the\n"
     "common shape SIP/2.0/TRANSPORT host[:port][;name[=token]]... with a\n"
     "port <= 65535: the parts the pure code gives, else NotImplemented (the\n"
     "pure code decides). TypeError for a non-str."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "txsipua.sip._speedups",
    "Optional C accelerator of txsipua.sip.message (the pure code is the reference).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    for (int c = 0x20; c < 0x7f; c++) {
        line_ok[c] = 1;
    }
    for (int c = 0x80; c < 0x100; c++) {
        line_ok[c] = 1;
    }
    line_ok['\t'] = 1;
    space = PyUnicode_InternFromString(" ");
    if (space == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
