// Python face of the native module, and nothing else: argument checks, keeping borrowed buffers alive, releasing
// the GIL around the work, which lives in the other units. Arrays are used in place (no copies): inputs of the
// wrong dtype, layout or size are rejected with a clear error. pyserver/_native.pyi spells out every signature
// defined here; tests/native/test_stub.py fails when the two disagree.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "act_quant.h"
#include "cpu.h"
#include "formats.h"
#include "hamming.h"
#include "matmul.h"
#include "membw.h"
#include "model.h"
#include "output_head.h"
#include "thread_pool.h"
#include "vec_ops.h"

namespace py = pybind11;
using namespace ryz;

namespace {

// ---- arguments -------------------------------------------------------------------------

Isa parse_isa(const std::string& name) {
    if (name == "auto") return resolve_auto_isa();
    const Isa isa = isa_from_name(name);
    if (!isa_supported(isa))
        throw std::runtime_error(std::string("the ") + name + " path was requested but this CPU supports at most " +
                                 isa_name(detected_isa()));
    return isa;
}

// A C-contiguous, aligned numpy array of exactly dtype T, else TypeError/ValueError.
template <class T>
py::array_t<T> strict_array(const py::handle& obj, const char* what, int ndim_min, int ndim_max) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(what) + ": expected a numpy array, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    auto arr = py::reinterpret_borrow<py::array>(obj);
    if (!arr.dtype().is(py::dtype::of<T>()))
        throw py::type_error(std::string(what) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                             ", got " + std::string(py::str(arr.dtype())));
    if (arr.ndim() < ndim_min || arr.ndim() > ndim_max)
        throw py::value_error(std::string(what) + ": expected " + std::to_string(ndim_min) +
                              (ndim_min == ndim_max ? "" : "-" + std::to_string(ndim_max)) + " dimensions, got " +
                              std::to_string(arr.ndim()));
    if (!(arr.flags() & py::array::c_style))
        throw py::value_error(std::string(what) + ": array must be C-contiguous (use numpy.ascontiguousarray)");
    if (reinterpret_cast<uintptr_t>(arr.data()) % alignof(T) != 0)
        throw py::value_error(std::string(what) + ": array data is misaligned for " +
                              std::string(py::str(py::dtype::of<T>())));
    return py::reinterpret_borrow<py::array_t<T>>(arr);
}

// ---- CPU and threads ---------------------------------------------------------------------

py::dict cpu_info() {
    const CpuFeatures& f = cpu_features();
    py::dict features;
    features["avx2"] = f.avx2; features["fma"] = f.fma; features["f16c"] = f.f16c;
    features["avx512f"] = f.avx512f; features["avx512bw"] = f.avx512bw; features["avx512vl"] = f.avx512vl;
    features["avx512dq"] = f.avx512dq; features["avx512vnni"] = f.avx512vnni; features["avx_vnni"] = f.avx_vnni;
    features["os_ymm"] = f.os_ymm; features["os_zmm"] = f.os_zmm;
    py::dict checks;
    for (int i = 0; i < kIsaLevels; ++i) checks[isa_name(static_cast<Isa>(i))] = self_check_status(static_cast<Isa>(i));
    py::dict d;
    d["features"] = features;
    d["detected"] = isa_name(detected_isa());
    d["active"] = isa_name(active_isa());
    d["auto"] = isa_name(resolve_auto_isa());
    d["self_check"] = checks;
    d["threads"] = ThreadPool::instance().size();
    return d;
}

std::vector<std::string> available_isas() {
    std::vector<std::string> out;
    for (int i = 0; i < kIsaLevels; ++i)
        if (isa_supported(static_cast<Isa>(i))) out.emplace_back(isa_name(static_cast<Isa>(i)));
    return out;
}

void set_num_threads(int n) {
    if (n < 1) throw py::value_error("thread count must be >= 1");
    ThreadPool::instance().resize(n);
}

py::array_t<uint8_t> py_alloc_weights(int64_t nbytes) {
    if (nbytes < 0) throw py::value_error("nbytes must be >= 0");
    void* p = alloc_weights(nbytes);
    if (p == nullptr) throw std::bad_alloc();
    py::capsule owner(p, [](void* q) { free_weights(q); });
    return py::array_t<uint8_t>({nbytes}, {int64_t(1)}, static_cast<uint8_t*>(p), owner);
}

void bind_cpu(py::module_& m) {
    m.def("cpu_info", &cpu_info, "CPU features, dispatch levels and the SIMD self-check results.");
    m.def("available_isas", &available_isas, "ISA levels this CPU can run, lowest first.");
    m.def("set_isa_cap", [](const std::string& name) { set_isa_cap(isa_from_name(name)); }, py::arg("isa"),
          "Caps automatic dispatch at this level (also settable with RYZ_MAX_ISA).");
    m.def("set_num_threads", &set_num_threads, py::arg("n"));
    m.def("num_threads", [] { return ThreadPool::instance().size(); });
    m.def("measure_read_bandwidth", [](int64_t bytes, int threads, int reps) {
        py::gil_scoped_release nogil;
        return measure_read_bandwidth(bytes, threads, reps);
    }, py::arg("bytes") = int64_t(512) << 20, py::arg("threads") = 1, py::arg("reps") = 5,
       "Best memory read rate in GB/s over `reps` passes of a `bytes` buffer.");
    m.def("alloc_weights", &py_alloc_weights, py::arg("nbytes"),
          "A zeroed-on-demand uint8 array in huge-page-advised memory, for packed weights.");
}

// ---- ternary packings and matrices ------------------------------------------------------------

// A packed tensor kept alive by the buffer it lives in (numpy array, bytes, mmap, ...).
struct PyTernaryMatrix {
    std::unique_ptr<py::buffer_info> buf;  // holds the exporter's buffer (an mmap cannot close under us)
    py::object owner;
    std::unique_ptr<TernaryMatrix> m;
};

std::unique_ptr<PyTernaryMatrix> make_matrix(const std::string& fmt, const py::buffer& data, int64_t rows,
                                             int64_t cols) {
    auto out = std::make_unique<PyTernaryMatrix>();
    out->buf = std::make_unique<py::buffer_info>(data.request(false));
    const py::buffer_info& b = *out->buf;
    if (b.itemsize != 1) throw py::type_error("packed data must be a byte buffer (uint8), got itemsize " +
                                              std::to_string(b.itemsize));
    if (b.ndim != 1) throw py::value_error("packed data must be one-dimensional");
    if (b.strides[0] != 1) throw py::value_error("packed data must be contiguous");
    out->owner = data;
    out->m = std::make_unique<TernaryMatrix>(format_from_name(fmt), static_cast<const uint8_t*>(b.ptr),
                                             static_cast<int64_t>(b.size), rows, cols);
    return out;
}

Format checked_format(const std::string& fmt, int64_t rows, int64_t cols) {
    const Format f = format_from_name(fmt);
    check_shape(f, rows, cols);
    return f;
}

py::array_t<uint8_t> py_pack(const std::string& fmt, const py::handle& w_obj, const py::handle& s_obj) {
    const Format f = format_from_name(fmt);
    auto w = strict_array<int8_t>(w_obj, "weights", 2, 2);
    auto s = strict_array<float>(s_obj, "scales", 1, 2);
    const int64_t rows = w.shape(0), cols = w.shape(1);
    check_shape(f, rows, cols);
    if (s.size() != scale_count(f, rows, cols))
        throw py::value_error(std::string(format_name(f)) + " needs " + std::to_string(scale_count(f, rows, cols)) +
                              " scales for a " + std::to_string(rows) + "x" + std::to_string(cols) +
                              " matrix, got " + std::to_string(s.size()));
    py::array_t<uint8_t> out(packed_bytes(f, rows, cols));
    pack(f, w.data(), s.data(), rows, cols, out.mutable_data());
    return out;
}

// The -1 / 0 / +1 counts of a tensor, refusing one with 2-bit codes 3 (+2): not ternary, and the kernels' integer
// bounds assume there are none.
py::tuple ternary_counts(const int64_t* counts, const std::string& fmt) {
    if (counts[3] > 0)
        throw py::value_error(fmt + " tensor holds " + std::to_string(counts[3]) +
                              " weights with the 2-bit code 3 (+2): not a ternary tensor");
    return py::make_tuple(counts[0], counts[1], counts[2]);
}

py::object py_repack_i2s4(const std::string& fmt, const py::buffer& data, int64_t rows, int64_t cols,
                          const py::handle& out_obj) {
    auto pm = make_matrix(fmt, data, rows, cols);
    auto out = py::reinterpret_borrow<py::array>(out_obj);
    if (!py::isinstance<py::array_t<uint8_t>>(out_obj) || !(out.flags() & py::array::c_style) || !out.writeable() ||
        out.nbytes() != packed_bytes(Format::I2_S4, rows, cols))
        throw py::value_error("out must be a writable contiguous uint8 array of packed_nbytes('I2_S4', rows, cols) bytes");
    const MatView& v = pm->m->view();
    int64_t counts[4];
    bool done;
    {
        py::gil_scoped_release release;
        done = repack_i2s4(v.fmt, v.data, rows, cols, static_cast<uint8_t*>(out.mutable_data()), counts);
    }
    if (!done) return py::none();
    return ternary_counts(counts, fmt);
}

py::tuple py_trit_counts(const std::string& fmt, const py::buffer& data, int64_t rows, int64_t cols) {
    auto pm = make_matrix(fmt, data, rows, cols);
    const MatView& v = pm->m->view();
    int64_t counts[4];
    {
        py::gil_scoped_release release;
        trit_counts(v.fmt, v.data, rows, cols, counts);
    }
    return ternary_counts(counts, fmt);
}

auto py_unpack(const std::string& fmt, const py::buffer& data, int64_t rows, int64_t cols) {
    auto pm = make_matrix(fmt, data, rows, cols);
    const Format f = pm->m->view().fmt;
    py::array_t<int8_t> w({rows, cols});
    py::array_t<float> s(is_i2(f) ? std::vector<int64_t>{1} : std::vector<int64_t>{rows, cols / scale_group(f)});
    unpack(f, pm->m->view().data, rows, cols, w.mutable_data(), s.mutable_data());
    return py::make_tuple(w, s);
}

auto py_quantize_activations(const py::handle& x_obj, int64_t block, const std::string& isa) {
    const VecOps& ops = vec_ops_for(parse_isa(isa));
    auto x = strict_array<float>(x_obj, "activations", 1, 2);
    const int64_t n = x.ndim() == 2 ? x.shape(0) : 1, k = x.shape(x.ndim() - 1);
    if (block < 0 || (block > 0 && k % block != 0))
        throw py::value_error("block must be 0 (per token) or divide the row length " + std::to_string(k));
    py::array_t<int8_t> q(x.ndim() == 2 ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k});
    if (block == 0) {
        py::array_t<float> s(n);
        ops.quantize_rows(x.data(), n, k, q.mutable_data(), s.mutable_data());
        return py::make_tuple(q, s);
    }
    py::array_t<float> d(std::vector<int64_t>{n, k / block});
    ops.quantize_blocks(x.data(), n, k, block, q.mutable_data(), d.mutable_data());
    return py::make_tuple(q, d);
}

// The activations of a TernaryMatrix call: int8 [n, cols] with, per block, their scales [n, cols / block].
Acts matrix_acts(const py::array_t<int8_t>& x, int64_t n, int64_t cols, const py::object& scales_obj, int64_t block,
                 py::array_t<float>& keep) {
    if (block < 0 || (block > 0 && cols % block != 0))
        throw py::value_error("block must be 0 (per token) or divide the row length " + std::to_string(cols));
    if (block == 0) {
        if (!scales_obj.is_none()) throw py::value_error("scales are for per-block activations (give block too)");
        return Acts{x.data(), n, nullptr, 0};
    }
    keep = strict_array<float>(scales_obj, "scales", 1, 2);
    if (keep.size() != n * (cols / block))
        throw py::value_error("scales must hold n * cols / block = " + std::to_string(n * (cols / block)) + " values");
    return Acts{x.data(), n, keep.data(), block};
}

py::array_t<float> matrix_gemv(const PyTernaryMatrix& p, const py::handle& x_obj, const std::string& isa_name_,
                               const py::object& scales, int64_t block) {
    auto x = strict_array<int8_t>(x_obj, "activations", 1, 1);
    const MatView& v = p.m->view();
    if (x.shape(0) != v.cols)
        throw py::value_error("activations have " + std::to_string(x.shape(0)) + " values, matrix has " +
                              std::to_string(v.cols) + " columns");
    const Isa isa = parse_isa(isa_name_);
    py::array_t<float> keep;
    const Acts acts = matrix_acts(x, 1, v.cols, scales, block, keep);
    py::array_t<float> y(v.rows);
    {
        py::gil_scoped_release nogil;
        p.m->gemv(acts, y.mutable_data(), isa);
    }
    return y;
}

py::array_t<float> matrix_gemm(const PyTernaryMatrix& p, const py::handle& x_obj, const std::string& isa_name_,
                               const py::object& scales, int64_t block) {
    auto x = strict_array<int8_t>(x_obj, "activations", 2, 2);
    const MatView& v = p.m->view();
    if (x.shape(1) != v.cols)
        throw py::value_error("activations have " + std::to_string(x.shape(1)) + " columns, matrix has " +
                              std::to_string(v.cols));
    const Isa isa = parse_isa(isa_name_);
    py::array_t<float> keep;
    const Acts acts = matrix_acts(x, x.shape(0), v.cols, scales, block, keep);
    py::array_t<float> y({static_cast<int64_t>(x.shape(0)), v.rows});
    {
        py::gil_scoped_release nogil;
        p.m->gemm(acts, y.mutable_data(), isa);
    }
    return y;
}

// The outer-product layout (I2_R16 / I2_R16_G*) a tensor repacks into, and the repack: (layout, counts).
std::string py_r16_target(const std::string& fmt, const py::buffer& data, int64_t rows, int64_t cols) {
    auto pm = make_matrix(fmt, data, rows, cols);
    const MatView& v = pm->m->view();
    return format_name(r16_target(v.fmt, v.data, rows, cols));
}

py::tuple py_repack_r16(const std::string& fmt, const py::buffer& data, int64_t rows, int64_t cols,
                        const py::handle& out_obj) {
    auto pm = make_matrix(fmt, data, rows, cols);
    const MatView& v = pm->m->view();
    const Format to = r16_target(v.fmt, v.data, rows, cols);
    auto out = py::reinterpret_borrow<py::array>(out_obj);
    if (!py::isinstance<py::array_t<uint8_t>>(out_obj) || !(out.flags() & py::array::c_style) || !out.writeable() ||
        out.nbytes() != packed_bytes(to, rows, cols))
        throw py::value_error(std::string("out must be a writable contiguous uint8 array of packed_nbytes('") +
                              format_name(to) + "', rows, cols) bytes");
    int64_t counts[4];
    {
        py::gil_scoped_release release;
        repack_r16(v.fmt, v.data, rows, cols, static_cast<uint8_t*>(out.mutable_data()), counts);
    }
    return py::make_tuple(format_name(to), ternary_counts(counts, fmt));
}

void bind_kernels(py::module_& m) {
    m.def("packed_nbytes", [](const std::string& fmt, int64_t rows, int64_t cols) {
        return packed_bytes(checked_format(fmt, rows, cols), rows, cols);
    }, py::arg("fmt"), py::arg("rows"), py::arg("cols"));
    m.def("scale_count", [](const std::string& fmt, int64_t rows, int64_t cols) {
        return scale_count(checked_format(fmt, rows, cols), rows, cols);
    }, py::arg("fmt"), py::arg("rows"), py::arg("cols"));
    m.def("pack", &py_pack, py::arg("fmt"), py::arg("weights"), py::arg("scales"),
          "Packs an int8 {-1,0,1} matrix. scales: one per block or group (TQ1_0/TQ2_0: 256, Q2_0: 64, Q2_0_128: 128, "
          "I2_R16_G<n>: n; shape [rows, cols/group]) or one (I2_S, I2_S4, I2_R16).");
    m.def("r16_target", &py_r16_target, py::arg("fmt"), py::arg("data"), py::arg("rows"), py::arg("cols"),
          "The outer-product layout the tensor repacks into: I2_R16 when its blocks share one nonzero scale, else "
          "I2_R16_G<its group>.");
    m.def("repack_r16", &py_repack_r16, py::arg("fmt"), py::arg("data"), py::arg("rows"), py::arg("cols"),
          py::arg("out"),
          "Writes the tensor into out (packed_nbytes(r16_target(...)) bytes) in that layout; returns (layout, "
          "(-1, 0, +1 counts)).");
    m.def("repack_i2s4", &py_repack_i2s4, py::arg("fmt"), py::arg("data"), py::arg("rows"), py::arg("cols"),
          py::arg("out"),
          "Writes the tensor into out as I2_S4 (the decode layout) when its blocks share one nonzero scale and "
          "returns its weights' counts (-1, 0, +1); None (out untouched) when the scales differ.");
    m.def("trit_counts", &py_trit_counts, py::arg("fmt"), py::arg("data"), py::arg("rows"), py::arg("cols"),
          "The number of weights -1, 0 and +1 in a packed tensor.");
    m.def("unpack", &py_unpack, py::arg("fmt"), py::arg("data"), py::arg("rows"), py::arg("cols"),
          "Returns (int8 weights [rows, cols], float32 scales).");
    m.def("quantize_activations", &py_quantize_activations, py::arg("x"), py::arg("block") = 0, py::arg("isa") = "auto",
          "Absmax int8 quantization. block 0: per token, returns (q, scale) with x ~= q / scale; else per block of "
          "`block` values, returns (q, d [n, cols/block]) with x ~= q * d.");

    py::class_<PyTernaryMatrix>(m, "TernaryMatrix")
        .def(py::init(&make_matrix), py::arg("fmt"), py::arg("data"), py::arg("rows"), py::arg("cols"),
             "A packed ternary matrix used in place from `data` (any byte buffer: numpy, bytes, mmap).")
        .def_property_readonly("rows", [](const PyTernaryMatrix& p) { return p.m->view().rows; })
        .def_property_readonly("cols", [](const PyTernaryMatrix& p) { return p.m->view().cols; })
        .def_property_readonly("fmt", [](const PyTernaryMatrix& p) { return format_name(p.m->view().fmt); })
        .def_property_readonly("nbytes", [](const PyTernaryMatrix& p) {
            return packed_bytes(p.m->view().fmt, p.m->view().rows, p.m->view().cols);
        })
        .def("gemv", &matrix_gemv, py::arg("x"), py::arg("isa") = "auto", py::arg("scales") = py::none(),
             py::arg("block") = 0,
             "y = W x for int8 x (weight scales applied; with block, x's per-block scales [cols/block] too).")
        .def("gemm", &matrix_gemm, py::arg("x"), py::arg("isa") = "auto", py::arg("scales") = py::none(),
             py::arg("block") = 0,
             "Y = X W^T for int8 X [n, cols] (weight scales applied; with block, X's per-block scales [n, "
             "cols/block] too).");
}

// ---- the model ------------------------------------------------------------------------------

struct PyModel {
    std::unique_ptr<Model> m;
    std::vector<py::object> owners;  // every buffer the model borrows
    std::vector<std::unique_ptr<py::buffer_info>> bufs;
};

struct PyKvCache {
    py::object model_owner;
    const Model* model;
    std::unique_ptr<KvCache> kv;
};

struct CancelFlag {
    std::atomic<bool> flag{false};
};

template <class T>
T cfg_get(const py::dict& d, const char* key) {
    if (!d.contains(key)) throw py::value_error(std::string("model config: missing '") + key + "'");
    return d[key].cast<T>();
}

ModelConfig parse_config(const py::dict& d) {
    ModelConfig c;
    c.n_embd = cfg_get<int64_t>(d, "n_embd");
    c.n_ff = cfg_get<int64_t>(d, "n_ff");
    c.n_layer = cfg_get<int64_t>(d, "n_layer");
    c.n_head = cfg_get<int64_t>(d, "n_head");
    c.n_head_kv = cfg_get<int64_t>(d, "n_head_kv");
    c.head_dim = cfg_get<int64_t>(d, "head_dim");
    c.rope_dim = cfg_get<int64_t>(d, "rope_dim");
    c.vocab = cfg_get<int64_t>(d, "vocab");
    c.rope_base = cfg_get<float>(d, "rope_base");
    c.norm_eps = cfg_get<float>(d, "norm_eps");
    const std::string act = cfg_get<std::string>(d, "act");
    if (act == "silu") c.act = FfnAct::Silu;
    else if (act == "relu2") c.act = FfnAct::Relu2;
    else throw py::value_error("model config: unknown FFN activation '" + act + "' (silu, relu2)");
    c.sub_norms = cfg_get<bool>(d, "sub_norms");
    c.rope_neox = cfg_get<bool>(d, "rope_neox");
    c.qk_norm = d.contains("qk_norm") ? d["qk_norm"].cast<bool>() : false;
    c.act_block = d.contains("act_block") ? d["act_block"].cast<int64_t>() : 0;
    return c;
}

std::unique_ptr<PyModel> make_model(const py::dict& cfg) {
    auto pm = std::make_unique<PyModel>();
    pm->m = std::make_unique<Model>(parse_config(cfg));
    return pm;
}

void set_linear(PyModel& pm, int64_t layer, const std::string& name, const std::string& fmt, const py::buffer& data,
                int64_t rows, int64_t cols, float scale) {
    auto holder = make_matrix(fmt, data, rows, cols);
    pm.m->set_linear(layer, name.c_str(), std::move(holder->m), scale);
    pm.owners.push_back(holder->owner);
    pm.bufs.push_back(std::move(holder->buf));
}

void set_norm(PyModel& pm, int64_t layer, const std::string& name, const py::handle& w_obj) {
    auto w = strict_array<float>(w_obj, name.c_str(), 1, 1);
    const ModelConfig& c = pm.m->config();
    const int64_t want = name == "ffn_sub_norm"                              ? c.n_ff
                         : name == "attn_sub_norm"                           ? c.n_head * c.head_dim
                         : name == "attn_q_norm" || name == "attn_k_norm" ? c.head_dim
                                                                             : c.n_embd;
    if (w.shape(0) != want)
        throw py::value_error(name + " has " + std::to_string(w.shape(0)) + " values, the config needs " +
                              std::to_string(want));
    pm.m->set_norm(layer, name.c_str(), w.data());
    pm.owners.push_back(w);
}

// Points the head's top-k rescoring at the stored table (any buffer of [vocab, n_embd] F32/F16/BF16 values).
void set_exact(PyModel& pm, OutputHead& h, const py::object& exact, const std::string& exact_type, int rescore_k) {
    if (exact.is_none() || rescore_k <= 0) return;
    const TableType type = table_type_from_name(exact_type);
    const ModelConfig& c = pm.m->config();
    auto b = std::make_unique<py::buffer_info>(py::reinterpret_borrow<py::buffer>(exact).request(false));
    if (b->size * b->itemsize != c.vocab * c.n_embd * table_item_bytes(type))
        throw py::value_error("exact table has the wrong size for [vocab, n_embd] " + exact_type);
    h.exact = b->ptr;
    h.exact_type = type;
    h.rescore_k = rescore_k;
    pm.owners.push_back(exact);
    pm.bufs.push_back(std::move(b));
}

// set_head_int8 / set_head_int4: T is the row element, kPerByte how many weights one element holds.
template <class T, int kPerByte>
void set_quantized_head(PyModel& pm, const py::handle& q_obj, const py::handle& s_obj, const py::object& exact,
                        const std::string& exact_type, int rescore_k) {
    auto q = strict_array<T>(q_obj, "head rows", 2, 2);
    auto s = strict_array<float>(s_obj, "head scales", 1, 1);
    const ModelConfig& c = pm.m->config();
    if (q.shape(0) != c.vocab || q.shape(1) * kPerByte != c.n_embd || s.shape(0) != c.vocab)
        throw py::value_error("quantized head must be [vocab, n_embd / " + std::to_string(kPerByte) +
                              "] with vocab scales");
    OutputHead h;
    if constexpr (kPerByte == 1) {
        h.q = q.data();
        pm.owners.push_back(q);
    } else {  // the kernels read the I4x4 layout: interleaved here, in memory the model owns
        void* p = alloc_weights(i4x4_bytes(c.vocab, c.n_embd));
        if (p == nullptr) throw std::bad_alloc();
        py::capsule owner(p, [](void* b) { free_weights(b); });
        interleave_head_i4(q.data(), c.vocab, c.n_embd, static_cast<uint8_t*>(p));
        h.q4 = static_cast<const uint8_t*>(p);
        pm.owners.push_back(owner);
    }
    h.q_scale = s.data();
    set_exact(pm, h, exact, exact_type, rescore_k);
    pm.m->set_head(h);
    pm.owners.push_back(s);
}

void set_head_ternary(PyModel& pm, const std::string& fmt, const py::buffer& data, int64_t rows, int64_t cols) {
    auto holder = make_matrix(fmt, data, rows, cols);
    pm.m->set_head_ternary(std::move(holder->m));
    pm.owners.push_back(holder->owner);
    pm.bufs.push_back(std::move(holder->buf));
}

void set_head_f32(PyModel& pm, const py::handle& w_obj) {
    auto w = strict_array<float>(w_obj, "head rows", 2, 2);
    const ModelConfig& c = pm.m->config();
    if (w.shape(0) != c.vocab || w.shape(1) != c.n_embd) throw py::value_error("float32 head must be [vocab, n_embd]");
    OutputHead h;
    h.f32 = w.data();
    pm.m->set_head(h);
    pm.owners.push_back(w);
}

py::object forward(const PyModel& pm, PyKvCache& cache, const py::handle& x_obj, int64_t n_logits,
                   CancelFlag* cancel) {
    if (cache.model != pm.m.get()) throw py::value_error("this cache belongs to another model");
    auto x = strict_array<float>(x_obj, "embeddings", 2, 2);
    const ModelConfig& c = pm.m->config();
    if (x.shape(1) != c.n_embd)
        throw py::value_error("embeddings have " + std::to_string(x.shape(1)) + " columns, n_embd is " +
                              std::to_string(c.n_embd));
    py::array_t<float> logits(std::vector<int64_t>{n_logits, c.vocab});
    bool done;
    {
        py::gil_scoped_release nogil;
        done = pm.m->forward(*cache.kv, x.data(), x.shape(0), n_logits, logits.mutable_data(),
                             cancel != nullptr ? &cancel->flag : nullptr);
    }
    if (!done) return py::none();
    return logits;
}

py::array_t<float> head(const PyModel& pm, const py::handle& h_obj) {
    auto h = strict_array<float>(h_obj, "hidden states", 2, 2);
    const ModelConfig& c = pm.m->config();
    if (h.shape(1) != c.n_embd) throw py::value_error("hidden states must have n_embd columns");
    py::array_t<float> logits(std::vector<int64_t>{static_cast<int64_t>(h.shape(0)), c.vocab});
    {
        py::gil_scoped_release nogil;
        ForwardScratch scratch;  // a diagnostic entry point: no sequence to lend its scratch
        pm.m->head(h.data(), h.shape(0), logits.mutable_data(), scratch);
    }
    return logits;
}

std::unique_ptr<PyKvCache> make_cache(const py::object& model_obj, int64_t n_ctx) {
    const PyModel& pm = model_obj.cast<const PyModel&>();
    auto c = std::make_unique<PyKvCache>();
    c->model_owner = model_obj;
    c->model = pm.m.get();
    c->kv = std::make_unique<KvCache>(pm.m->config(), n_ctx);
    return c;
}

void truncate_cache(PyKvCache& c, int64_t n) {
    if (n < 0 || n > c.kv->n_past)
        throw py::value_error("can only truncate the cache: 0 <= n_past <= " + std::to_string(c.kv->n_past));
    c.kv->n_past = n;
}

void bind_model(py::module_& m) {
    // Both classes exist before any method is defined, so signatures name them (Model.forward takes a KvCache).
    py::class_<CancelFlag> cancel(m, "CancelFlag", "A flag the forward pass checks between layers.");
    py::class_<PyModel> model(m, "Model", "The native transformer; every weight buffer is borrowed, never copied.");
    py::class_<PyKvCache> cache(m, "KvCache", "Keys and values of one sequence.");

    cancel.def(py::init<>())
        .def("set", [](CancelFlag& c) { c.flag.store(true); })
        .def("clear", [](CancelFlag& c) { c.flag.store(false); })
        .def_property_readonly("is_set", [](const CancelFlag& c) { return c.flag.load(); });

    model.def(py::init(&make_model), py::arg("config"))
        .def("set_linear", &set_linear, py::arg("layer"), py::arg("name"), py::arg("fmt"), py::arg("data"),
             py::arg("rows"), py::arg("cols"), py::arg("scale") = 1.0f)
        .def("set_norm", &set_norm, py::arg("layer"), py::arg("name"), py::arg("weight"),
             "layer -1 with name 'output_norm' for the final norm.")
        .def("set_head_int8", &set_quantized_head<int8_t, 1>, py::arg("rows"), py::arg("scales"),
             py::arg("exact") = py::none(), py::arg("exact_type") = "F16", py::arg("rescore_k") = 0,
             "Rows int8 in [-127, 127], logit = scale * (row . q) / act_scale; the top rescore_k logits per token are "
             "recomputed from `exact` (the stored [vocab, n_embd] table, raw bytes of type exact_type).")
        .def("set_head_int4", &set_quantized_head<uint8_t, 2>, py::arg("rows"), py::arg("scales"),
             py::arg("exact") = py::none(), py::arg("exact_type") = "F16", py::arg("rescore_k") = 0,
             "Rows from quantize_weight_rows_i4 ([vocab, n_embd / 2] bytes); see set_head_int8 for the rest.")
        .def("set_head_f32", &set_head_f32, py::arg("rows"))
        .def("set_head_ternary", &set_head_ternary, py::arg("fmt"), py::arg("data"), py::arg("rows"), py::arg("cols"),
             "A ternary output head [vocab, n_embd] in any packing, served by the projections' kernels.")
        .def("check_complete", [](const PyModel& pm) { pm.m->check_complete(); })
        .def_property_readonly("isa", [](const PyModel& pm) { return isa_name(pm.m->isa()); })
        .def("forward", &forward, py::arg("cache"), py::arg("x"), py::arg("n_logits") = 1,
             py::arg("cancel") = nullptr,
             "Appends tokens (embeddings x [n, n_embd]) to the cache; returns logits of the last n_logits tokens, "
             "or None if cancelled (the cache is then unchanged).")
        .def("head", &head, py::arg("h"), "The output head alone on normed hidden states.");

    cache.def(py::init(&make_cache), py::arg("model"), py::arg("n_ctx"))
        .def_property("n_past", [](const PyKvCache& c) { return c.kv->n_past; }, &truncate_cache)
        .def_property_readonly("n_ctx", [](const PyKvCache& c) { return c.kv->n_ctx; })
        .def_property_readonly("nbytes", [](const PyKvCache& c) {
            return static_cast<int64_t>((c.kv->k.size() + c.kv->v.size()) * sizeof(float));
        });
}

// ---- output-head rows -----------------------------------------------------------------------

auto quantize_weight_rows(const py::handle& w_obj) {
    auto w = strict_array<float>(w_obj, "weights", 2, 2);
    const int64_t rows = w.shape(0), cols = w.shape(1);
    py::array_t<int8_t> q(std::vector<int64_t>{rows, cols});
    py::array_t<float> s(rows);
    {
        py::gil_scoped_release nogil;
        quantize_head_rows_i8(w.data(), rows, cols, q.mutable_data(), s.mutable_data());
    }
    return py::make_tuple(q, s);
}

auto quantize_weight_rows_i4(const py::handle& w_obj) {
    auto w = strict_array<float>(w_obj, "weights", 2, 2);
    const int64_t rows = w.shape(0), cols = w.shape(1);
    py::array_t<uint8_t> q(std::vector<int64_t>{rows, i4_row_bytes(cols)});
    py::array_t<float> s(rows);
    {
        py::gil_scoped_release nogil;
        quantize_head_rows_i4(w.data(), rows, cols, q.mutable_data(), s.mutable_data());
    }
    return py::make_tuple(q, s);
}

void bind_output_head(py::module_& m) {
    m.def("quantize_weight_rows", &quantize_weight_rows, py::arg("w"),
          "Per-row symmetric int8: returns (q [rows, cols] in [-127, 127], scales [rows]).");
    m.def("quantize_weight_rows_i4", &quantize_weight_rows_i4, py::arg("w"),
          "Per-row symmetric 4-bit: returns (packed [rows, cols / 2] uint8, scales [rows]).");
}

// ---- Hamming search --------------------------------------------------------------------------

void check_signature_bytes(int64_t bytes) {
    if (bytes % 8 != 0 || bytes == 0 || bytes > MAX_SIGNATURE_BYTES)
        throw py::value_error("signatures: rows must be 8 to " + std::to_string(MAX_SIGNATURE_BYTES) +
                              " bytes, a multiple of 8; got " + std::to_string(bytes));
}

auto py_hamming_topk(const py::handle& sig_obj, const py::handle& q_obj, int64_t k, const py::object& rows_obj,
                          const std::string& isa_name_) {
    auto sigs = strict_array<uint8_t>(sig_obj, "signatures", 2, 2);
    auto q = strict_array<uint8_t>(q_obj, "query", 1, 1);
    const int64_t n = sigs.shape(0), bytes = sigs.shape(1);
    check_signature_bytes(bytes);
    if (q.shape(0) != bytes)
        throw py::value_error("query: expected " + std::to_string(bytes) + " bytes, got " + std::to_string(q.shape(0)));
    if (k < 0) throw py::value_error("k must be >= 0");
    const int64_t* rows = nullptr;
    int64_t m = n;
    py::array_t<int64_t> rows_arr;
    if (!rows_obj.is_none()) {
        rows_arr = strict_array<int64_t>(rows_obj, "rows", 1, 1);
        rows = rows_arr.data();
        m = rows_arr.shape(0);
        for (int64_t i = 0; i < m; ++i)
            if (rows[i] < 0 || rows[i] >= n)
                throw py::index_error("rows: " + std::to_string(rows[i]) + " is outside [0, " + std::to_string(n) +
                                      ")");
    }
    const Isa isa = parse_isa(isa_name_);
    HammingHits hits;
    {
        py::gil_scoped_release nogil;
        hits = hamming_topk(sigs.data(), bytes, q.data(), rows, m, k, isa);
    }
    py::array_t<int64_t> out_rows(static_cast<py::ssize_t>(hits.rows.size()));
    py::array_t<int32_t> out_dist(static_cast<py::ssize_t>(hits.distances.size()));
    std::copy(hits.rows.begin(), hits.rows.end(), out_rows.mutable_data());
    std::copy(hits.distances.begin(), hits.distances.end(), out_dist.mutable_data());
    return py::make_tuple(out_rows, out_dist);
}

auto py_hamming_nearest(const py::handle& sig_obj, const py::handle& cent_obj, const std::string& isa_name_) {
    auto sigs = strict_array<uint8_t>(sig_obj, "signatures", 2, 2);
    auto cents = strict_array<uint8_t>(cent_obj, "centroids", 2, 2);
    const int64_t n = sigs.shape(0), bytes = sigs.shape(1), k = cents.shape(0);
    check_signature_bytes(bytes);
    if (cents.shape(1) != bytes)
        throw py::value_error("centroids: expected rows of " + std::to_string(bytes) + " bytes, got " +
                              std::to_string(cents.shape(1)));
    if (k == 0) throw py::value_error("centroids: need at least one");
    const Isa isa = parse_isa(isa_name_);
    py::array_t<int32_t> label(n);
    py::array_t<uint16_t> dist(n);
    {
        py::gil_scoped_release nogil;
        hamming_nearest(sigs.data(), n, bytes, cents.data(), k, label.mutable_data(), dist.mutable_data(), isa);
    }
    return py::make_tuple(label, dist);
}

void bind_hamming(py::module_& m) {
    m.def("hamming_topk", &py_hamming_topk, py::arg("signatures"), py::arg("query"), py::arg("k"),
          py::arg("rows") = py::none(), py::arg("isa") = "auto",
          "The k signatures nearest to query by Hamming distance, among `rows` (all when None): (rows, distances), "
          "nearest first, ties by row.");
    m.def("hamming_nearest", &py_hamming_nearest, py::arg("signatures"), py::arg("centroids"), py::arg("isa") = "auto",
          "For each signature, the nearest centroid by Hamming distance: (labels int32, distances uint16).");
}

}  // namespace

PYBIND11_MODULE(_native, mod) {
    mod.doc() = "Ryzanstein native ternary kernels";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::invalid_argument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });
    bind_cpu(mod);
    bind_kernels(mod);
    bind_model(mod);
    bind_output_head(mod);
    bind_hamming(mod);
}
