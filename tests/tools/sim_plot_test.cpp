// seqpar-sim's SVG writer: the document is well-formed XML (checked with a small tag-stack
// parser), has one series group per series with the right number of points, a legend entry per
// series, axis labels and titles, breaks lines at missing points, and escapes text.
#include "tools/sim_plot.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace seqpar {
namespace {

// Checks that tags nest and close; counts elements by name. Returns "" or the first problem.
std::string check_xml(const std::string& text, std::map<std::string, int>& counts) {
  std::vector<std::string> stack;
  size_t pos = 0;
  while ((pos = text.find('<', pos)) != std::string::npos) {
    const size_t end = text.find('>', pos);
    if (end == std::string::npos) return "unterminated tag";
    std::string tag = text.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (tag.empty()) return "empty tag";
    if (tag[0] == '?' || tag[0] == '!') continue;  // declaration, comment
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name) return "unbalanced </" + name + ">";
      stack.pop_back();
      continue;
    }
    const bool self_closing = tag.back() == '/';
    const std::string name = tag.substr(0, tag.find_first_of(" /"));
    // Attribute values must be quoted and hold no raw '<' or '&' other than entities.
    if (std::count(tag.begin(), tag.end(), '"') % 2 != 0) return "odd quotes in <" + name;
    ++counts[name];
    if (!self_closing) stack.push_back(name);
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  // Raw ampersands must start an entity.
  for (size_t a = text.find('&'); a != std::string::npos; a = text.find('&', a + 1)) {
    const std::string rest = text.substr(a, 6);
    if (rest.rfind("&amp;", 0) != 0 && rest.rfind("&lt;", 0) != 0 && rest.rfind("&gt;", 0) != 0 &&
        rest.rfind("&quot;", 0) != 0 && rest.rfind("&apos;", 0) != 0) {
      return "raw & in text";
    }
  }
  return "";
}

int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

PlotDocument sample_document() {
  PlotDocument doc;
  doc.title = "seqpar-sim: 8 x H100 <test> & co";
  doc.subtitle = "model predictions, not measurements\nsecond line";
  PlotPanel p;
  p.title = "TFLOP/s per GPU";
  p.x_label = "GPUs (log2 scale)";
  p.y_label = "TFLOP/s per GPU";
  p.series.push_back({"ring", {8, 16, 32, 64}, {300, 250, 200, 150}});
  p.series.push_back({"ulysses", {8, 16, 32, 64}, {320, 310, NAN, NAN}});  // excluded at 32+
  p.series.push_back({"hybrid \"best\"", {8, 16, 32, 64}, {330, NAN, 300, 290}});  // a gap
  doc.panels.push_back(p);
  PlotPanel e = p;
  e.title = "efficiency";
  e.y_max = 1.0;
  doc.panels.push_back(e);
  return doc;
}

TEST(SimPlot, WellFormedWithTheExpectedSeries) {
  const std::string svg = render_svg(sample_document());
  std::map<std::string, int> counts;
  ASSERT_EQ(check_xml(svg, counts), "") << svg;
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_EQ(counts["svg"], 1);
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_EQ(counts["g"], 2 * (1 + 3 + 1));  // per panel: the panel, 3 series, the legend
  // Series groups, in both panels.
  EXPECT_EQ(count_of(svg, "data-series=\"ring\""), 2);
  EXPECT_EQ(count_of(svg, "data-series=\"ulysses\""), 2);
  EXPECT_EQ(count_of(svg, "data-series=\"hybrid &quot;best&quot;\""), 2);
  // Points: 4 + 2 + 3 per panel; lines: ring 1, ulysses 1, hybrid 2 (broken at the gap).
  EXPECT_EQ(counts["circle"], 2 * 9);
  EXPECT_EQ(counts["polyline"], 2 * 4);
  // Titles, subtitle lines, axis labels, legend entries, escaping.
  EXPECT_NE(svg.find("seqpar-sim: 8 x H100 &lt;test&gt; &amp; co"), std::string::npos);
  EXPECT_NE(svg.find(">model predictions, not measurements</text>"), std::string::npos);
  EXPECT_NE(svg.find(">second line</text>"), std::string::npos);
  EXPECT_EQ(count_of(svg, ">GPUs (log2 scale)</text>"), 2);
  EXPECT_EQ(count_of(svg, "class=\"y-label\""), 2);
  EXPECT_EQ(count_of(svg, ">ring</text>"), 2);  // one legend entry per panel
  // log2 x ticks 8..64 and the efficiency panel's fixed y range.
  for (const char* tick : {">8</text>", ">16</text>", ">32</text>", ">64</text>"}) {
    EXPECT_EQ(count_of(svg, tick), 2) << tick;
  }
  // y axes: the efficiency panel's fixed top (1) and the TFLOP/s panel's 1-2-5 top above
  // 330 * 1.05 with at most 5 steps (400, steps of 100).
  EXPECT_EQ(count_of(svg, ">1</text>"), 1);
  EXPECT_EQ(count_of(svg, ">400</text>"), 1);
  EXPECT_EQ(count_of(svg, ">100</text>"), 1);
  EXPECT_EQ(count_of(svg, ">500</text>"), 0);
}

TEST(SimPlot, PointsAreOrderedOnALog2Axis) {
  PlotDocument doc;
  PlotPanel p;
  p.series.push_back({"s", {1, 2, 4, 8}, {1, 1, 1, 1}});
  doc.panels.push_back(p);
  const std::string svg = render_svg(doc);
  std::regex circle("<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"");
  std::vector<double> xs;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle); it != std::sregex_iterator();
       ++it) {
    xs.push_back(std::stod((*it)[1]));
  }
  ASSERT_EQ(xs.size(), 4u);
  // Equal spacing for doublings.
  EXPECT_NEAR(xs[1] - xs[0], xs[2] - xs[1], 0.11);
  EXPECT_NEAR(xs[2] - xs[1], xs[3] - xs[2], 0.11);
  EXPECT_GT(xs[1], xs[0]);
}

TEST(SimPlot, EmptyDocumentIsStillValid) {
  std::map<std::string, int> counts;
  EXPECT_EQ(check_xml(render_svg(PlotDocument{}), counts), "");
  PlotDocument doc;
  doc.panels.push_back(PlotPanel{});
  EXPECT_EQ(check_xml(render_svg(doc), counts), "");
}

TEST(SimPlot, WritesFiles) {
  const std::string path = ::testing::TempDir() + "/seqpar_sim_plot_test.svg";
  ASSERT_TRUE(write_text_file(path, "<svg/>").is_ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "<svg/>");
  EXPECT_FALSE(write_text_file("/nonexistent-dir/x/y.svg", "x").is_ok());
}

}  // namespace
}  // namespace seqpar
