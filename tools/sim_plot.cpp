// SVG line charts for seqpar-sim (tools/sim_plot.hpp).
#include "tools/sim_plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

namespace seqpar {

namespace {

// Panel geometry (px).
constexpr double kPanelWidth = 640, kPanelHeight = 380;
constexpr double kLeft = 70, kRight = 175, kTop = 40, kBottom = 55;  // plot-area margins
constexpr double kTitleHeight = 36, kSubtitleLine = 18;              // document header

// Distinguishable colours (Okabe-Ito, then a few more), assigned by series name.
constexpr const char* kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                    "#56B4E9", "#000000", "#F0E442", "#8C564B", "#7F7F7F"};

std::string num(double value) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", value);
  return buf;
}

// Tick label: 0.25, 1, 40, 1.5k ...
std::string tick_label(double value) {
  char buf[32];
  if (value != 0 && std::fabs(value) < 1) {
    std::snprintf(buf, sizeof(buf), "%g", value);
  } else if (std::fabs(value) >= 10000) {
    std::snprintf(buf, sizeof(buf), "%gk", value / 1000);
  } else {
    std::snprintf(buf, sizeof(buf), "%g", value);
  }
  return buf;
}

// Smallest 1-2-5 x 10^k step with at most `ticks` steps up to `max`.
double nice_step(double max, int ticks) {
  const double raw = max / ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * magnitude >= raw) return m * magnitude;
  }
  return 10 * magnitude;
}

struct Axis {
  double x_lo, x_hi;  // log2 of the x range
  double y_max;
  double left, top, width, height;  // plot area in document coordinates
  double px(double x) const {
    const double span = x_hi > x_lo ? x_hi - x_lo : 1.0;
    return left + (std::log2(x) - x_lo) / span * width;
  }
  double py(double y) const { return top + height - y / y_max * height; }
};

void render_panel(const PlotPanel& panel, double origin_x, double origin_y,
                  const std::map<std::string, std::string>& colours, std::string& out) {
  double x_min = 0, x_max = 0, y_data_max = 0;
  bool any = false;
  for (const PlotSeries& s : panel.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!(s.x[i] > 0)) continue;
      x_min = any ? std::min(x_min, s.x[i]) : s.x[i];
      x_max = any ? std::max(x_max, s.x[i]) : s.x[i];
      any = true;
      if (std::isfinite(s.y[i])) y_data_max = std::max(y_data_max, s.y[i]);
    }
  }
  if (!any) x_min = x_max = 1;
  Axis a;
  a.x_lo = std::floor(std::log2(x_min));
  a.x_hi = std::ceil(std::log2(x_max));
  if (a.x_hi <= a.x_lo) a.x_hi = a.x_lo + 1;
  double y_top = panel.y_max > 0 ? panel.y_max : (y_data_max > 0 ? y_data_max * 1.05 : 1.0);
  const double step = nice_step(y_top, 5);
  a.y_max = std::ceil(y_top / step - 1e-9) * step;
  a.left = origin_x + kLeft;
  a.top = origin_y + kTop;
  a.width = kPanelWidth - kLeft - kRight;
  a.height = kPanelHeight - kTop - kBottom;

  out += "<g class=\"panel\">\n";
  out += "<text class=\"panel-title\" x=\"" + num(origin_x + kPanelWidth / 2) + "\" y=\"" +
         num(origin_y + 24) + "\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">" +
         xml_escape(panel.title) + "</text>\n";
  // Grid and ticks.
  for (double y = 0; y <= a.y_max + step / 2; y += step) {
    out += "<line x1=\"" + num(a.left) + "\" y1=\"" + num(a.py(y)) + "\" x2=\"" +
           num(a.left + a.width) + "\" y2=\"" + num(a.py(y)) +
           "\" stroke=\"#dddddd\" stroke-width=\"1\"/>\n";
    out += "<text x=\"" + num(a.left - 6) + "\" y=\"" + num(a.py(y) + 4) +
           "\" text-anchor=\"end\" font-size=\"11\">" + tick_label(y) + "</text>\n";
  }
  for (double e = a.x_lo; e <= a.x_hi + 0.5; e += 1) {
    const double x = std::exp2(e);
    out += "<line x1=\"" + num(a.px(x)) + "\" y1=\"" + num(a.top) + "\" x2=\"" + num(a.px(x)) +
           "\" y2=\"" + num(a.top + a.height) + "\" stroke=\"#eeeeee\" stroke-width=\"1\"/>\n";
    out += "<text x=\"" + num(a.px(x)) + "\" y=\"" + num(a.top + a.height + 16) +
           "\" text-anchor=\"middle\" font-size=\"11\">" + tick_label(x) + "</text>\n";
  }
  // Axes and labels.
  out += "<rect x=\"" + num(a.left) + "\" y=\"" + num(a.top) + "\" width=\"" + num(a.width) +
         "\" height=\"" + num(a.height) + "\" fill=\"none\" stroke=\"#333333\"/>\n";
  out += "<text class=\"x-label\" x=\"" + num(a.left + a.width / 2) + "\" y=\"" +
         num(a.top + a.height + 38) + "\" text-anchor=\"middle\" font-size=\"12\">" +
         xml_escape(panel.x_label) + "</text>\n";
  const double label_x = origin_x + 18, label_y = a.top + a.height / 2;
  out += "<text class=\"y-label\" x=\"" + num(label_x) + "\" y=\"" + num(label_y) +
         "\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 " + num(label_x) + " " +
         num(label_y) + ")\">" + xml_escape(panel.y_label) + "</text>\n";
  // Series: one polyline per unbroken run of points, a marker at every point.
  for (const PlotSeries& s : panel.series) {
    const std::string& colour = colours.at(s.name);
    out += "<g class=\"series\" data-series=\"" + xml_escape(s.name) + "\">\n";
    std::string points;
    auto flush = [&] {
      if (!points.empty()) {
        out += "<polyline fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"2\" points=\"" +
               points + "\"/>\n";
      }
      points.clear();
    };
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!(s.x[i] > 0) || !std::isfinite(s.y[i])) {
        flush();
        continue;
      }
      if (!points.empty()) points += ' ';
      points += num(a.px(s.x[i]));
      points += ',';
      points += num(a.py(s.y[i]));
      out += "<circle cx=\"" + num(a.px(s.x[i])) + "\" cy=\"" + num(a.py(s.y[i])) +
             "\" r=\"3\" fill=\"" + colour + "\"><title>" + xml_escape(s.name) + ": " +
             tick_label(s.x[i]) + ", " + xml_escape(std::to_string(s.y[i])) + "</title></circle>\n";
    }
    flush();
    out += "</g>\n";
  }
  // Legend, right of the plot area.
  double legend_y = a.top + 8;
  out += "<g class=\"legend\">\n";
  for (const PlotSeries& s : panel.series) {
    const double lx = a.left + a.width + 14;
    out += "<line x1=\"" + num(lx) + "\" y1=\"" + num(legend_y) + "\" x2=\"" + num(lx + 22) +
           "\" y2=\"" + num(legend_y) + "\" stroke=\"" + colours.at(s.name) +
           "\" stroke-width=\"3\"/>\n";
    out += "<text x=\"" + num(lx + 28) + "\" y=\"" + num(legend_y + 4) + "\" font-size=\"12\">" +
           xml_escape(s.name) + "</text>\n";
    legend_y += 18;
  }
  out += "</g>\n</g>\n";
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string render_svg(const PlotDocument& doc) {
  std::map<std::string, std::string> colours;
  for (const PlotPanel& panel : doc.panels) {
    for (const PlotSeries& s : panel.series) {
      if (colours.count(s.name) == 0) {
        const size_t n = colours.size();
        colours[s.name] = kPalette[n % (sizeof(kPalette) / sizeof(kPalette[0]))];
      }
    }
  }
  const int columns = std::max(1, doc.columns);
  const int panels = static_cast<int>(doc.panels.size());
  const int rows = std::max(1, (panels + columns - 1) / columns);
  std::vector<std::string> subtitle_lines;
  for (size_t begin = 0; begin <= doc.subtitle.size();) {
    size_t end = doc.subtitle.find('\n', begin);
    if (end == std::string::npos) end = doc.subtitle.size();
    if (end > begin) subtitle_lines.push_back(doc.subtitle.substr(begin, end - begin));
    begin = end + 1;
  }
  const double header =
      kTitleHeight + kSubtitleLine * static_cast<double>(subtitle_lines.size()) + 8;
  const double width = kPanelWidth * std::min(columns, std::max(panels, 1));
  const double height = header + kPanelHeight * rows;
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" +
         num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
         "\" font-family=\"Helvetica, Arial, sans-serif\">\n";
  out += "<rect x=\"0\" y=\"0\" width=\"" + num(width) + "\" height=\"" + num(height) +
         "\" fill=\"#ffffff\"/>\n";
  out += "<text class=\"title\" x=\"" + num(width / 2) +
         "\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">" +
         xml_escape(doc.title) + "</text>\n";
  for (size_t i = 0; i < subtitle_lines.size(); ++i) {
    out += "<text class=\"subtitle\" x=\"" + num(width / 2) + "\" y=\"" +
           num(kTitleHeight + 14 + kSubtitleLine * static_cast<double>(i)) +
           "\" text-anchor=\"middle\" font-size=\"12\" fill=\"#444444\">" +
           xml_escape(subtitle_lines[i]) + "</text>\n";
  }
  for (int i = 0; i < panels; ++i) {
    render_panel(doc.panels[static_cast<size_t>(i)], kPanelWidth * (i % columns),
                 header + kPanelHeight * (i / columns), colours, out);
  }
  out += "</svg>\n";
  return out;
}

Status write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  SEQPAR_REQUIRE(out.good(), StatusCode::kInvalidArgument, "cannot write '", path, "'");
  out << text;
  out.close();
  SEQPAR_REQUIRE(!out.fail(), StatusCode::kInvalidArgument, "cannot write '", path, "'");
  return Status::ok();
}

}  // namespace seqpar
