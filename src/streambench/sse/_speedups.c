/* Optional accelerator of streambench.sse: the events of a run of *simple* blocks.
 *
 * A simple block is one `data: ` line, maybe after one `event: ` line, then a blank line,
 * with LF line ends (or CRLF ones when asked): nearly every block a provider sends. The
 * Python decoder (streambench/sse.py) finds the blank lines, keeps the buffer and handles
 * every other shape; this module only turns a run of simple blocks into SSEEvent tuples
 * without a Python-level step per event. Its result is checked against the pure-Python path
 * by the test suite (tests/test_sse.py runs every test on both).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

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

/* feed_lf(buffer, chunk, offset, last_id) -> list[SSEEvent] | int | None
 *
 * The decoder's whole LF-only step in one call (at small chunks the per-call overhead is the
 * cost): None, chunk not appended, when it holds a CR; else the chunk is appended to the
 * bytearray buffer (which holds no blank line before it) and the result is the events of its
 * complete blocks, removed from the buffer (an empty list when none is complete), or, when
 * they are not all simple, the end of the complete blocks for the Python path to decode. */
static PyObject *
feed_lf(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyByteArray_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "feed_lf takes (bytearray, chunk, offset, last_id)");
        return NULL;
    }
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups.init() was not called");
        return NULL;
    }
    PyObject *buffer = args[0];
    Py_ssize_t offset = PyLong_AsSsize_t(args[2]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer chunk;
    if (PyObject_GetBuffer(args[1], &chunk, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (memchr(chunk.buf, '\r', (size_t)chunk.len) != NULL) {
        PyBuffer_Release(&chunk);
        Py_RETURN_NONE;
    }
    int has_lf = memchr(chunk.buf, '\n', (size_t)chunk.len) != NULL;
    Py_ssize_t old = PyByteArray_GET_SIZE(buffer);
    Py_ssize_t size = old + chunk.len;
    if (PyByteArray_Resize(buffer, size) < 0) {
        PyBuffer_Release(&chunk);
        return NULL;
    }
    char *base = PyByteArray_AS_STRING(buffer);
    memcpy(base + old, chunk.buf, (size_t)chunk.len);
    PyBuffer_Release(&chunk);
    if (!has_lf) {
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
    PyObject *events = run_events(base, stop, offset, args[3], 0);
    if (events == Py_None) {
        Py_DECREF(events);
        return PyLong_FromSsize_t(stop);
    }
    if (events == NULL) {
        return NULL;
    }
    memmove(base, base + stop, (size_t)(size - stop));
    if (PyByteArray_Resize(buffer, size - stop) < 0) {
        Py_DECREF(events);
        return NULL;
    }
    return events;
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
    {"feed_lf", (PyCFunction)(void (*)(void))feed_lf, METH_FASTCALL,
     "feed_lf(buffer, chunk, offset, last_id): the decoder's LF-only step, see the source."},
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
