// CLIP byte-level BPE over the exported vocab.json + merges.txt, as transformers' CLIPTokenizer (and the Python
// runtime's tokenizers pipeline) do: lower-case, whitespace runs to one space, CLIP's pre-tokenizer pattern,
// GPT-2 byte-to-unicode mapping, BPE with the "</w>" end-of-word suffix, <|startoftext|> ... <|endoftext|>,
// padded to max_length with the pad token. Unicode letters / numbers / spaces and lower case come from coarse
// block tables (tokenizer.cpp: classify, lower) instead of the full Unicode database the Python side uses: ids are
// tested equal on ASCII, Latin, Greek, Cyrillic, CJK, other digit forms, emoji and odd spaces; scripts outside
// those blocks may split differently, and input is not NFC-normalised.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ldm3d {

class ClipTokenizer {
public:
    static ClipTokenizer from_folder(const std::string& folder);
    std::vector<int64_t> encode(const std::string& prompt) const;   // max_length ids
    int max_length() const { return max_length_; }

private:
    std::vector<std::string> bpe(const std::string& word) const;
    std::vector<std::string> pre_tokenize(const std::string& text) const;
    int id_of(const std::string& token) const;

    std::unordered_map<std::string, int> vocab_;
    std::map<std::pair<std::string, std::string>, int> ranks_;
    std::string byte_to_unicode_[256];
    int bos_ = 0, eos_ = 0, pad_ = 0, unk_ = 0, max_length_ = 77;
    std::string bos_text_ = "<|startoftext|>", eos_text_ = "<|endoftext|>";
};

}  // namespace ldm3d
