/* Optional accelerator of streambench.sse: the decoder's hot path.
 *
 * A simple block is one `data: ` line, maybe after one `event: ` line, then a blank line,
 * with LF line ends (or CRLF ones when asked): nearly every block a provider sends.
 * SSEDecoder.feed is the C function below for LF-only streams (append, blank-line search,
 * events of simple blocks, cut: one call per network read, no Python frame); the Python
 * decoder (streambench/sse/__init__.py) handles every other shape and uses simple_events for
 * runs of simple blocks. Results are checked against the pure-Python path by the test suite
 * (tests/test_sse.py and tests/test_sse_corpus.py run every test on both).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include "structmember.h"

static PyTypeObject *event_type = NULL; /* streambench.sse.SSEEvent, set by init() */
static PyObject *message = NULL;        /* "message", the type of events without one */

/* A new SSEEvent(event, data, id, None, start, end); steals `name` and `data`. */
static PyObject *
new_event(PyObject *name, PyObject *data, PyObject *last_id, Py_ssize_t start, Py_ssize_t end)
{
    PyObject *start_obj = PyLong_FromSsize_t(start);
    PyObject *end_obj = PyLong_FromSsize_t(end);
    PyObject *event = NULL;
    if (start_obj != NULL && end_obj != NULL) {
        event = event_type->tp_alloc(event_type, 6);
    }
    if (event == NULL) {
        Py_XDECREF(start_obj);
        Py_XDECREF(end_obj);
        Py_DECREF(name);
        Py_DECREF(data);
        return NULL;
    }
    Py_INCREF(last_id);
    Py_INCREF(Py_None);
    PyTuple_SET_ITEM(event, 0, name);
    PyTuple_SET_ITEM(event, 1, data);
    PyTuple_SET_ITEM(event, 2, last_id);
    PyTuple_SET_ITEM(event, 3, Py_None);
    PyTuple_SET_ITEM(event, 4, start_obj);
    PyTuple_SET_ITEM(event, 5, end_obj);
    return event;
}

/* The end of the line that starts at p (its LF, or its CR of a CRLF), NULL when the line has
 * no line end of the expected kind before `stop` or holds a stray CR. */
static const char *
line_end(const char *p, const char *stop, int crlf)
{
    const char *lf = memchr(p, '\n', (size_t)(stop - p));
    if (lf == NULL) {
        return NULL;
    }
    const char *value_end = lf;
    if (crlf) {
        if (lf == p || lf[-1] != '\r') {
            return NULL;
        }
        value_end = lf - 1;
    }
    if (memchr(p, '\r', (size_t)(value_end - p)) != NULL) { /* a CR is a line end too */
        return NULL;
    }
    return value_end;
}

/* The events of base[0:stop] when it is a run of simple blocks (offsets counted from
 * `offset`): a new list, Py_None (a new reference) when anything else is in it, NULL on error. */
static PyObject *
run_events(const char *base, Py_ssize_t stop, Py_ssize_t offset, PyObject *last_id, int crlf)
{
    const Py_ssize_t eol_len = crlf ? 2 : 1;
    const char *end = base + stop;
    const char *p = base;
    PyObject *events = PyList_New(0);
    /* The last event type: consecutive blocks mostly share it. */
    const char *prev_type = NULL;
    Py_ssize_t prev_type_len = -1;
    PyObject *prev_name = NULL;
    if (events == NULL) {
        goto fail;
    }
    while (p < end) {
        const char *block = p;
        const char *type = NULL;
        Py_ssize_t type_len = 0;
        if (end - p >= 7 && memcmp(p, "event: ", 7) == 0) {
            const char *type_end = line_end(p + 7, end, crlf);
            if (type_end == NULL) {
                goto not_simple;
            }
            type = p + 7;
            type_len = type_end - type;
            p = type_end + eol_len;
        }
        if (end - p < 6 || memcmp(p, "data: ", 6) != 0) {
            goto not_simple;
        }
        const char *data = p + 6;
        const char *data_end = line_end(data, end, crlf);
        if (data_end == NULL) {
            goto not_simple;
        }
        p = data_end + eol_len; /* the blank line */
        if (end - p < eol_len || p[0] != (crlf ? '\r' : '\n') || (crlf && p[1] != '\n')) {
            goto not_simple;
        }
        p += eol_len;

        PyObject *name;
        if (type_len == 0) {
            name = message;
            Py_INCREF(name);
        }
        else if (prev_name != NULL && type_len == prev_type_len &&
                 memcmp(type, prev_type, (size_t)type_len) == 0) {
            name = prev_name;
            Py_INCREF(name);
        }
        else {
            name = PyUnicode_DecodeUTF8(type, type_len, "replace");
            if (name == NULL) {
                goto fail;
            }
            Py_XDECREF(prev_name);
            prev_name = name;
            Py_INCREF(prev_name);
            prev_type = type;
            prev_type_len = type_len;
        }
        PyObject *text = PyUnicode_DecodeUTF8(data, data_end - data, "replace");
        if (text == NULL) {
            Py_DECREF(name);
            goto fail;
        }
        PyObject *event =
            new_event(name, text, last_id, offset + (block - base), offset + (p - base));
        if (event == NULL) {
            goto fail;
        }
        int appended = PyList_Append(events, event);
        Py_DECREF(event);
        if (appended < 0) {
            goto fail;
        }
    }
    Py_XDECREF(prev_name);
    return events;

not_simple:
    Py_XDECREF(prev_name);
    Py_DECREF(events);
    Py_RETURN_NONE;

fail:
    Py_XDECREF(prev_name);
    Py_XDECREF(events);
    return NULL;
}

/* simple_events(buffer, stop, offset, last_id, crlf) -> list[SSEEvent] | None
 *
 * The events of buffer[0:stop] when it is a run of simple blocks (offsets counted from
 * `offset`), None when anything else is in it. */
static PyObject *
simple_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "simple_events takes 5 arguments");
        return NULL;
    }
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups.init() was not called");
        return NULL;
    }
    Py_ssize_t stop = PyLong_AsSsize_t(args[1]);
    Py_ssize_t offset = PyLong_AsSsize_t(args[2]);
    if ((stop == -1 || offset == -1) && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *last_id = args[3];
    int crlf = PyObject_IsTrue(args[4]);
    if (crlf < 0) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (stop < 0 || stop > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "stop is outside the buffer");
        return NULL;
    }
    PyObject *events = run_events((const char *)view.buf, stop, offset, last_id, crlf);
    PyBuffer_Release(&view);
    return events;
}

/* The decoder's slots that feed() reads and writes, found by their member descriptors. */
static PyObject *python_feed = NULL;  /* SSEDecoder._feed_python: every case but the LF fast one */
static PyObject *take_name = NULL;    /* "_take" */
static Py_ssize_t off_buf, off_offset, off_has_cr, off_last_id;

static int
slot_offset(PyTypeObject *cls, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyDict_GetItemString(cls->tp_dict, name); /* borrowed */
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
        ((PyMemberDescrObject *)descr)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "decoder_feed: %s is not a slot of the class", name);
        return -1;
    }
    *offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    return 0;
}

#define SLOT(self, off) (*(PyObject **)((char *)(self) + (off)))

/* SSEDecoder.feed(chunk) -> list[SSEEvent]
 *
 * The decoder's whole LF-only step in one call, method call included (at small chunks the
 * per-call overhead is the cost): when the buffer holds no CR and is past the stream start
 * (where a BOM may come first) and the chunk is bytes without a CR, the chunk is appended to the
 * buffer (which holds no blank line before it) and the events of its complete blocks are
 * returned, cut off the buffer (an empty list when none is complete); complete blocks that
 * are not all simple go to self._take(end); anything else to SSEDecoder._feed_python. */
static PyObject *
decoder_feed_impl(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "feed() takes one chunk");
        return NULL;
    }
    PyObject *fallback_args[2] = {self, args[0]};
    PyObject *buffer = SLOT(self, off_buf);
    PyObject *offset_obj = SLOT(self, off_offset);
    PyObject *last_id = SLOT(self, off_last_id);
    /* bytes only (what sockets give): other buffers, and every other state, go to Python */
    if (!PyBytes_CheckExact(args[0]) || buffer == NULL || !PyByteArray_CheckExact(buffer) ||
        offset_obj == NULL || !PyLong_CheckExact(offset_obj) || last_id == NULL ||
        SLOT(self, off_has_cr) != Py_False) {
        return PyObject_Vectorcall(python_feed, fallback_args, 2, NULL);
    }
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t len = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t offset = PyLong_AsSsize_t(offset_obj);
    if (offset <= 0 || memchr(data, '\r', (size_t)len) != NULL) {
        PyErr_Clear(); /* (an offset too large for Py_ssize_t cannot happen) */
        return PyObject_Vectorcall(python_feed, fallback_args, 2, NULL);
    }
    Py_ssize_t old = PyByteArray_GET_SIZE(buffer);
    Py_ssize_t size = old + len;
    if (PyByteArray_Resize(buffer, size) < 0) {
        return NULL;
    }
    char *base = PyByteArray_AS_STRING(buffer);
    memcpy(base + old, data, (size_t)len);
    if (memchr(data, '\n', (size_t)len) == NULL) {
        return PyList_New(0);
    }
    /* The last blank line: in the chunk, or straddling its start. */
    Py_ssize_t first = old > 0 ? old - 1 : 0;
    Py_ssize_t i = size - 2;
    while (i >= first && !(base[i] == '\n' && base[i + 1] == '\n')) {
        i--;
    }
    if (i < first) {
        return PyList_New(0);
    }
    Py_ssize_t stop = i + 2;
    PyObject *events = run_events(base, stop, offset, last_id, 0);
    if (events == NULL) {
        return NULL;
    }
    if (events == Py_None) { /* complete blocks, not all simple: the Python path */
        Py_DECREF(events);
        PyObject *stop_obj = PyLong_FromSsize_t(stop);
        if (stop_obj == NULL) {
            return NULL;
        }
        PyObject *taken = PyObject_CallMethodOneArg(self, take_name, stop_obj);
        Py_DECREF(stop_obj);
        return taken;
    }
    PyObject *new_offset = PyLong_FromSsize_t(offset + stop);
    if (new_offset == NULL) {
        Py_DECREF(events);
        return NULL;
    }
    Py_SETREF(SLOT(self, off_offset), new_offset);
    memmove(base, base + stop, (size_t)(size - stop));
    if (PyByteArray_Resize(buffer, size - stop) < 0) {
        Py_DECREF(events);
        return NULL;
    }
    return events;
}

static PyMethodDef decoder_feed_def = {
    "feed", (PyCFunction)(void (*)(void))decoder_feed_impl, METH_FASTCALL,
    "feed(chunk) -> list[SSEEvent]: the events that the chunk completes, in stream order.",
};

/* decoder_feed(SSEDecoder, SSEDecoder._feed_python) -> the C feed, as a method to install */
static PyObject *
decoder_feed(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "decoder_feed takes (SSEDecoder, fallback feed)");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)args[0];
    if (slot_offset(cls, "_buf", &off_buf) < 0 || slot_offset(cls, "_offset", &off_offset) < 0 ||
        slot_offset(cls, "_has_cr", &off_has_cr) < 0 ||
        slot_offset(cls, "_last_id", &off_last_id) < 0) {
        return NULL;
    }
    if (take_name == NULL && (take_name = PyUnicode_InternFromString("_take")) == NULL) {
        return NULL;
    }
    Py_INCREF(args[1]);
    Py_XSETREF(python_feed, args[1]);
    /* A method descriptor, as a C type's methods are: called without a bound-method object. */
    return PyDescr_NewMethod(cls, &decoder_feed_def);
}

/* init(SSEEvent): the tuple subclass to build events of. */
static PyObject *
init(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "init() takes a tuple subclass");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(event_type, (PyTypeObject *)cls);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"simple_events", (PyCFunction)(void (*)(void))simple_events, METH_FASTCALL,
     "simple_events(buffer, stop, offset, last_id, crlf) -> list of events, or None when "
     "buffer[:stop] is not a run of simple blocks."},
    {"decoder_feed", (PyCFunction)(void (*)(void))decoder_feed, METH_FASTCALL,
     "decoder_feed(SSEDecoder, fallback): SSEDecoder.feed in C, see the source."},
    {"init", init, METH_O, "init(SSEEvent): the event type to build."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "streambench.sse._speedups", "Accelerator of streambench.sse.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    message = PyUnicode_InternFromString("message");
    if (message == NULL) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
