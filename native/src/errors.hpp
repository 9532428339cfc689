// The one exception type inside the library; the C ABI turns it into a status code and a message.
#pragma once

#include <stdexcept>
#include <string>

namespace ldm3d {

enum class Status { Ok = 0, InvalidArgument = 1, ModelFolder = 2, Device = 3, Cancelled = 4, Output = 5, Internal = 6 };

class Error : public std::runtime_error {
public:
    Error(Status status, const std::string& message) : std::runtime_error(message), status(status) {}
    Status status;
};

}  // namespace ldm3d
