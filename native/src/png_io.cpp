// PNG files through libpng (Debian's libpng-dev): 8-bit RGB and 16-bit grey, each written to a temporary file
// beside the target and renamed, so a failed write leaves nothing behind.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "errors.hpp"
#include "pipeline.hpp"

namespace ldm3d {
namespace {

void write_png(const std::string& path, int width, int height, int color_type, int bit_depth,
               const std::vector<unsigned char>& rows, size_t row_bytes) {
    std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(Status::Output, "cannot write " + tmp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        std::fclose(f);
        std::remove(tmp.c_str());
        throw Error(Status::Output, "libpng failed writing " + path);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; ++y) png_write_row(png, const_cast<png_bytep>(rows.data() + y * row_bytes));
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    bool ok = std::fclose(f) == 0;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw Error(Status::Output, "cannot write " + path);
    }
}

}  // namespace

void write_png_rgb(const std::string& path, const std::vector<float>& rgb, int height, int width) {
    std::vector<unsigned char> bytes(rgb.size());
    for (size_t i = 0; i < rgb.size(); ++i) bytes[i] = static_cast<unsigned char>(std::nearbyint(rgb[i] * 255.0f));
    write_png(path, width, height, PNG_COLOR_TYPE_RGB, 8, bytes, size_t(width) * 3);
}

void write_png_depth16(const std::string& path, const std::vector<float>& depth, int height, int width) {
    std::vector<unsigned char> bytes(depth.size() * 2);
    for (size_t i = 0; i < depth.size(); ++i) {   // PNG stores 16-bit samples big-endian
        auto v = static_cast<unsigned>(std::nearbyint(std::clamp(depth[i], 0.0f, 1.0f) * 65535.0f));
        bytes[2 * i] = static_cast<unsigned char>(v >> 8);
        bytes[2 * i + 1] = static_cast<unsigned char>(v & 255);
    }
    write_png(path, width, height, PNG_COLOR_TYPE_GRAY, 16, bytes, size_t(width) * 2);
}

}  // namespace ldm3d
