// Model files in HDF5. See model_file.h.
#include "gyre/io/model_file.h"

#include <cmath>

#include "gyre/core/error.h"
#include "hdf5_util.h"

namespace gyre::io {
namespace {

void double_attribute(const std::string& path, hid_t obj, const char* name, double v) {
  h5::Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  h5::Handle a(H5Acreate2(obj, name, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &v) < 0)
    h5::fail(path, std::string("cannot write attribute ") + name);
}

void double_group(const std::string& path, hid_t file, const char* group, const std::map<std::string, double>& m) {
  h5::Handle g(H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!g.valid()) h5::fail(path, std::string("cannot create group ") + group);
  for (const auto& [name, v] : m) double_attribute(path, g.get(), name.c_str(), v);
}

double read_double(const std::string& path, hid_t obj, const std::string& where, const char* name) {
  if (H5Aexists(obj, name) <= 0) h5::fail(path, "attribute '" + where + name + "' is missing");
  h5::Handle a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  h5::Handle type(H5Aget_type(a.get()), H5Tclose);
  if (!a.valid() || H5Tget_class(type.get()) != H5T_FLOAT)
    h5::fail(path, "attribute '" + where + name + "' is not a floating-point number");
  double v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) h5::fail(path, "cannot read attribute '" + where + name + "'");
  return v;
}

std::map<std::string, double> read_double_group(const std::string& path, hid_t file, const char* group) {
  std::map<std::string, double> m;
  if (H5Lexists(file, group, H5P_DEFAULT) <= 0) h5::fail(path, std::string("group ") + group + " is missing");
  h5::Handle g(H5Gopen2(file, group, H5P_DEFAULT), H5Gclose);
  if (!g.valid()) h5::fail(path, std::string("cannot open group ") + group);
  std::vector<std::string> names;
  auto add = +[](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->emplace_back(name);
    return 0;
  };
  hsize_t idx = 0;
  if (H5Aiterate2(g.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, add, &names) < 0)
    h5::fail(path, std::string("cannot list the attributes of ") + group);
  for (const auto& n : names) m[n] = read_double(path, g.get(), std::string(group) + "/", n.c_str());
  return m;
}

}  // namespace

void write_model(const std::string& path, const ModelFile& m) {
  h5::Writer w(path);
  w.attribute("format", std::string("gyre-model"));
  w.attribute("format_version", kModelFormatVersion);
  w.attribute("kind", m.kind);
  w.attribute("loss", m.loss);
  w.attribute("algorithm", m.algorithm);
  double_attribute(path, w.file(), "l2", m.l2);
  w.attribute("bias", std::uint64_t{m.bias ? 1u : 0u});
  w.attribute("hash_bits", static_cast<std::uint64_t>(m.hash_bits));
  w.attribute("dimension", m.dimension);
  w.attribute("k", std::uint64_t{m.k});
  w.attribute("version", m.version);
  w.attribute("parent_version", m.parent_version);
  w.attribute("data_range", m.data_range);
  w.dataset("/weights", m.weights);
  w.group("/state");
  for (const auto& [name, v] : m.state) w.dataset(("/state/" + name).c_str(), v);
  double_group(path, w.file(), "/params", m.params);
  double_group(path, w.file(), "/metrics", m.metrics);
  w.commit();
}

ModelFile read_model(const std::string& path) {
  h5::Reader r(path);
  if (!r.has_attribute("format") || r.string_attribute("format") != "gyre-model")
    h5::fail(path, "not a gyre model file (attribute 'format' is not \"gyre-model\")");
  const std::uint64_t fv = r.integer_attribute("format_version");
  if (fv != kModelFormatVersion)
    h5::fail(path, "model format version " + std::to_string(fv) + ", but this gyre reads version " +
                       std::to_string(kModelFormatVersion));
  ModelFile m;
  m.kind = r.string_attribute("kind");
  m.loss = r.string_attribute("loss");
  m.algorithm = r.string_attribute("algorithm");
  m.l2 = read_double(path, r.file(), "", "l2");
  m.bias = r.integer_attribute("bias") != 0;
  const std::uint64_t hb = r.integer_attribute("hash_bits");
  if (hb > 31) h5::fail(path, "attribute 'hash_bits' is " + std::to_string(hb) + " (at most 31)");
  m.hash_bits = static_cast<int>(hb);
  m.dimension = r.integer_attribute("dimension");
  m.k = static_cast<std::uint32_t>(r.integer_attribute("k"));
  m.version = r.integer_attribute("version");
  m.parent_version = r.integer_attribute("parent_version");
  m.data_range = r.string_attribute("data_range");
  m.weights = r.read_all<double>("/weights");
  for (const auto& name : r.children("/state")) m.state[name] = r.read_all<double>(("/state/" + name).c_str());
  m.params = read_double_group(path, r.file(), "/params");
  m.metrics = read_double_group(path, r.file(), "/metrics");
  // The weights must fit the rest.
  std::uint64_t want = 0;
  if (m.kind == "kmeans") want = static_cast<std::uint64_t>(m.k) * m.dimension;
  else if (m.kind == "logreg" || m.kind == "linreg") want = m.dimension + (m.bias ? 1 : 0);
  else h5::fail(path, "unknown model kind '" + m.kind + "' (expected logreg, linreg or kmeans)");
  if (m.weights.size() != want)
    h5::fail(path, "dataset /weights has " + std::to_string(m.weights.size()) + " values, but a " + m.kind +
                       " model of dimension " + std::to_string(m.dimension) +
                       (m.kind == "kmeans" ? " and k " + std::to_string(m.k) : std::string(m.bias ? " with a bias" : "")) +
                       " has " + std::to_string(want));
  for (double w : m.weights)
    if (!std::isfinite(w)) h5::fail(path, "dataset /weights holds a value that is not finite");
  return m;
}

}  // namespace gyre::io
