/*
 * via_parts(text): the C fast path of txsipua.sip.values.Via.parse (RFC 3261 §20.42).
 *
 * Included by _speedups.c (which includes Python.h first).  It accepts the common
 * shape
 *
 *     SIP/2.0/<letters> SP <host>[:<1-5 digits>][;<token>[=<value>]]...
 *
 * with host "[" [0-9A-Fa-f:.]+ "]" or [A-Za-z0-9][A-Za-z0-9.-]* not ending with "-",
 * token [A-Za-z0-9-.!%*_+`'~]+ and value any of 0x21, 0x23-0x3a, 0x3c-0x7e (visible
 * ASCII but '"' and ';', possibly empty), and a port <= 65535, and returns what the
 * pure Via.parse gives for it:
 *
 *     (transport upper-cased, host as written, port int or None, params dict)
 *
 * params maps each name lower-cased to its value (None for a flag); a repeated name
 * keeps its first position and its last value, as the pure code's dict stores do.
 * The usual transports and parameter names are shared strings (the values equal the
 * pure path's; sharing them only saves memory).  Anything else (non-ASCII text, any
 * other shape, a port above 65535) returns NotImplemented so the pure code decides and
 * raises its errors; a non-str raises TypeError.  The pure path is the reference:
 * tests/sip/test_accelerator_differential.py compares both on fuzzed text.
 *
 * Memory safety: every read of the text is at an index checked against its length;
 * nothing is written but fresh strings; every object made is owned by the result or
 * released on the error and decline paths.
 */

/* character classes of the Via fast path, filled on the first call */
#define VIA_ALPHA 0x01  /* [A-Za-z] */
#define VIA_HOST 0x02   /* [A-Za-z0-9.-] */
#define VIA_V6 0x04     /* [0-9A-Fa-f:.] */
#define VIA_TOKEN 0x08  /* [A-Za-z0-9-.!%*_+`'~] */
#define VIA_VALUE 0x10  /* 0x21, 0x23-0x3a, 0x3c-0x7e */
#define VIA_ALNUM 0x20  /* [A-Za-z0-9] */
#define VIA_UPPER 0x40  /* [A-Z] */
static unsigned char via_class[256];

typedef struct {
    const char *name; /* lower case for parameter names, upper case for transports */
    Py_ssize_t len;
    PyObject *str; /* interned, strong, made on the first call */
} via_shared;

/* values._TRANSPORTS_GET's transports */
static via_shared via_transports[] = {
    {"UDP", 3, NULL}, {"TCP", 3, NULL}, {"TLS", 3, NULL},
    {"WS", 2, NULL}, {"WSS", 3, NULL}, {"SCTP", 4, NULL},
};
/* values._NAMES_GET's names, the most frequent in Via first */
static via_shared via_names[] = {
    {"branch", 6, NULL}, {"rport", 5, NULL}, {"received", 8, NULL},
    {"maddr", 5, NULL}, {"ttl", 3, NULL}, {"alias", 5, NULL},
    {"tag", 3, NULL}, {"expires", 7, NULL}, {"q", 1, NULL},
    {"transport", 9, NULL}, {"lr", 2, NULL}, {"user", 4, NULL},
    {"method", 6, NULL}, {"ob", 2, NULL}, {"reg-id", 6, NULL},
    {"+sip.instance", 13, NULL}, {"gr", 2, NULL}, {"line", 4, NULL},
    {"ftag", 4, NULL}, {"did", 3, NULL}, {"nat", 3, NULL},
    {"sigcomp-id", 10, NULL}, {"comp", 4, NULL},
};
#define VIA_COUNT(a) ((Py_ssize_t)(sizeof(a) / sizeof((a)[0])))
static int via_ready;

/* fill the tables and make the shared strings (0, or -1 with an exception set) */
static int
via_init(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char k = 0;
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        int isdig = c >= '0' && c <= '9';
        if (alpha) {
            k |= VIA_ALPHA;
        }
        if (c >= 'A' && c <= 'Z') {
            k |= VIA_UPPER;
        }
        if (alpha || isdig) {
            k |= VIA_ALNUM | VIA_HOST | VIA_TOKEN;
        }
        if (c == '-' || c == '.') {
            k |= VIA_HOST;
        }
        if (isdig || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f') || c == ':' || c == '.') {
            k |= VIA_V6;
        }
        if (c != 0 && strchr("-.!%*_+`'~", c) != NULL) {
            k |= VIA_TOKEN;
        }
        if (c == 0x21 || (c >= 0x23 && c <= 0x3a) || (c >= 0x3c && c <= 0x7e)) {
            k |= VIA_VALUE;
        }
        via_class[c] = k;
    }
    for (Py_ssize_t i = 0; i < VIA_COUNT(via_transports); i++) {
        if (via_transports[i].str == NULL) {
            via_transports[i].str = PyUnicode_InternFromString(via_transports[i].name);
            if (via_transports[i].str == NULL) {
                return -1;
            }
        }
    }
    for (Py_ssize_t i = 0; i < VIA_COUNT(via_names); i++) {
        if (via_names[i].str == NULL) {
            via_names[i].str = PyUnicode_InternFromString(via_names[i].name);
            if (via_names[i].str == NULL) {
                return -1;
            }
        }
    }
    via_ready = 1;
    return 0;
}

/* s[0:n] (ASCII) as a new str, its letters lower-cased (lower = 1) or upper-cased
   (lower = 0) or kept (lower = -1): a shared string when it is one of table[0:count]
   (whose names are in the target case), else a fresh one; NULL with an exception set */
static PyObject *
via_str(const unsigned char *s, Py_ssize_t n, int lower, via_shared *table, Py_ssize_t count)
{
    for (Py_ssize_t t = 0; t < count; t++) {
        if (table[t].len != n) {
            continue;
        }
        const char *name = table[t].name;
        Py_ssize_t k = 0;
        while (k < n) {
            unsigned char c = s[k];
            if (lower == 1 && (via_class[c] & VIA_UPPER)) {
                c |= 0x20;
            }
            else if (lower == 0 && (via_class[c] & VIA_ALPHA)) {
                c &= (unsigned char)~0x20;
            }
            if (c != (unsigned char)name[k]) {
                break;
            }
            k++;
        }
        if (k == n) {
            Py_INCREF(table[t].str);
            return table[t].str;
        }
    }
#ifdef Py_LIMITED_API
    /* no writable str storage in the limited API: build the text, then decode it */
    char small[128];
    char *d = n <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc((size_t)n);
    if (d == NULL) {
        return PyErr_NoMemory();
    }
#else
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL) {
        return NULL;
    }
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(out);
#endif
    for (Py_ssize_t k = 0; k < n; k++) {
        unsigned char c = s[k];
        if (lower == 1 && (via_class[c] & VIA_UPPER)) {
            c |= 0x20;
        }
        else if (lower == 0 && (via_class[c] & VIA_ALPHA)) {
            c &= (unsigned char)~0x20;
        }
        d[k] = c;
    }
#ifdef Py_LIMITED_API
    PyObject *out = PyUnicode_DecodeASCII(d, n, NULL);
    if (d != small) {
        PyMem_Free(d);
    }
#endif
    return out;
}

static PyObject *
via_parts(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyUnicode_Check(arg)) {
#ifdef Py_LIMITED_API
        PyErr_SetString(PyExc_TypeError, "via_parts() argument must be str");
#else
        PyErr_Format(PyExc_TypeError, "via_parts() argument must be str, not %.100s",
                     Py_TYPE(arg)->tp_name);
#endif
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(arg) < 0) {
        return NULL;
    }
#endif
    if (!via_ready && via_init() < 0) {
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(arg)) {
        Py_RETURN_NOTIMPLEMENTED;  /* every class of the pattern is ASCII */
    }
    const unsigned char *s = PyUnicode_1BYTE_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    Py_ssize_t i = 8;

    /* "SIP/2.0/" transport SP */
    if (n < 8 || memcmp(s, "SIP/2.0/", 8) != 0) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    Py_ssize_t ts = i;
    while (i < n && (via_class[s[i]] & VIA_ALPHA)) {
        i++;
    }
    Py_ssize_t te = i;
    if (te == ts || i >= n || s[i] != ' ') {
        Py_RETURN_NOTIMPLEMENTED;
    }
    i++;

    /* host: [IPv6 reference] or a name / IPv4 address */
    Py_ssize_t hs = i;
    if (i < n && s[i] == '[') {
        i++;
        Py_ssize_t j = i;
        while (i < n && (via_class[s[i]] & VIA_V6)) {
            i++;
        }
        if (i == j || i >= n || s[i] != ']') {
            Py_RETURN_NOTIMPLEMENTED;
        }
        i++;
    }
    else {
        if (i >= n || !(via_class[s[i]] & VIA_ALNUM)) {
            Py_RETURN_NOTIMPLEMENTED;
        }
        i++;
        while (i < n && (via_class[s[i]] & VIA_HOST)) {
            i++;
        }
        if (s[i - 1] == '-') {  /* i - 1 >= hs: the first character was taken */
            Py_RETURN_NOTIMPLEMENTED;
        }
    }
    Py_ssize_t he = i;

    /* [":" 1*5DIGIT], at most 65535 */
    long port = -1;
    if (i < n && s[i] == ':') {
        i++;
        Py_ssize_t ps = i;
        port = 0;
        while (i < n && i - ps < 5 && s[i] >= '0' && s[i] <= '9') {
            port = port * 10 + (s[i] - '0');
            i++;
        }
        if (i == ps || port > 65535) {
            Py_RETURN_NOTIMPLEMENTED;
        }
    }
    if (i < n && s[i] != ';') {
        Py_RETURN_NOTIMPLEMENTED;
    }

    /* the parameters, checked whole before anything is made */
    for (Py_ssize_t j = i; j < n;) {
        j++;  /* the ';' */
        Py_ssize_t ns = j;
        while (j < n && (via_class[s[j]] & VIA_TOKEN)) {
            j++;
        }
        if (j == ns) {
            Py_RETURN_NOTIMPLEMENTED;
        }
        if (j < n && s[j] == '=') {
            j++;
            while (j < n && (via_class[s[j]] & VIA_VALUE)) {
                j++;
            }
        }
        if (j < n && s[j] != ';') {
            Py_RETURN_NOTIMPLEMENTED;
        }
    }

    PyObject *params = PyDict_New();
    if (params == NULL) {
        return NULL;
    }
    while (i < n) {
        i++;  /* the ';' */
        Py_ssize_t ns = i;
        while (i < n && (via_class[s[i]] & VIA_TOKEN)) {
            i++;
        }
        PyObject *key = via_str(s + ns, i - ns, 1, via_names, VIA_COUNT(via_names));
        if (key == NULL) {
            Py_DECREF(params);
            return NULL;
        }
        PyObject *value;
        if (i < n && s[i] == '=') {
            i++;
            Py_ssize_t vs = i;
            while (i < n && (via_class[s[i]] & VIA_VALUE)) {
                i++;
            }
            value = via_str(s + vs, i - vs, -1, NULL, 0);
            if (value == NULL) {
                Py_DECREF(key);
                Py_DECREF(params);
                return NULL;
            }
        }
        else {
            value = Py_None;
            Py_INCREF(value);
        }
        int rc = PyDict_SetItem(params, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            Py_DECREF(params);
            return NULL;
        }
        /* i is now at a ';' or the end, as the check above found */
    }

    PyObject *out = PyTuple_New(4);
    if (out == NULL) {
        Py_DECREF(params);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 3, params);  /* out owns params from here */
    PyObject *item = via_str(s + ts, te - ts, 0, via_transports, VIA_COUNT(via_transports));
    if (item == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, item);
    item = via_str(s + hs, he - hs, -1, NULL, 0);
    if (item == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 1, item);
    if (port < 0) {
        Py_INCREF(Py_None);
        item = Py_None;
    }
    else {
        item = PyLong_FromLong(port);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
    }
    PyTuple_SET_ITEM(out, 2, item);
    return out;
}
