#pragma once
// A small hand-written SVG line-chart writer for seqpar-sim (no plotting dependency): a grid of
// panels, each with a log2 x axis (GPUs), a linear y axis from 0, one polyline per series with
// point markers, axis labels, a title and a legend. A series' colour follows its name, so one
// scheme has the same colour in every panel.
#include <string>
#include <vector>

#include "core/status.hpp"

namespace seqpar {

struct PlotSeries {
  std::string name;
  std::vector<double> x;  // > 0 (log2 axis)
  std::vector<double> y;  // NaN: no point (the line breaks there)
};

struct PlotPanel {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<PlotSeries> series;
  double y_max = 0;  // 0: from the data, rounded up to a 1-2-5 step
};

struct PlotDocument {
  std::string title;
  std::string subtitle;  // e.g. "model predictions, not measurements"; '\n' starts a new line
  int columns = 2;       // panels per row
  std::vector<PlotPanel> panels;
};

// The SVG text (UTF-8, standalone, with width/height and a viewBox).
std::string render_svg(const PlotDocument& document);

// Writes `text` to `path` (kInvalidArgument when it cannot).
Status write_text_file(const std::string& path, const std::string& text);

// Text escaped for XML attributes and character data (& < > " ').
std::string xml_escape(const std::string& text);

}  // namespace seqpar
