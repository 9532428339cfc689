#include "tokenizer.hpp"

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "errors.hpp"

namespace ldm3d {
namespace {

std::string utf8(uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s += static_cast<char>(cp);
    } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
}

// One UTF-8 character starting at s[i] (malformed bytes count as one character).
size_t char_len(const std::string& s, size_t i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    return std::min(n, s.size() - i);
}

uint32_t code_point(const std::string& s, size_t i, size_t n) {
    auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[i + k])); };
    if (n == 2) return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    if (n == 3) return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    if (n == 4) return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
    return b(0);
}

// Coarse Unicode classes for CLIP's pattern (\p{L}, \p{N}, the rest): exact for ASCII and Latin-1, by block
// beyond (letters: Latin, Greek, Cyrillic ... scripts, kana, CJK, Hangul; numbers: super/subscripts, fractions,
// number forms, circled numbers, full-width digits; everything else - punctuation, symbols, emoji - is neither).
enum class Cls { Space, Letter, Number, Other };

Cls classify(uint32_t c) {
    if (c == ' ' || (c >= 9 && c <= 13) || c == 0x85 || c == 0xA0 || c == 0x3000 || (c >= 0x2000 && c <= 0x200A) ||
        c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x1680) return Cls::Space;
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return Cls::Letter;
        return c >= '0' && c <= '9' ? Cls::Number : Cls::Other;
    }
    if (c == 0xAA || c == 0xB5 || c == 0xBA || (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7)) return Cls::Letter;
    if (c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0xBC && c <= 0xBE)) return Cls::Number;
    if (c < 0x250) return Cls::Other;
    if ((c >= 0x2070 && c <= 0x2079 && c != 0x2071) || (c >= 0x2080 && c <= 0x2089) || (c >= 0x2150 && c <= 0x2189) ||
        (c >= 0x2460 && c <= 0x249B) || (c >= 0x24EA && c <= 0x24FF) || (c >= 0xFF10 && c <= 0xFF19)) return Cls::Number;
    if ((c >= 0x250 && c <= 0x2FF) || (c >= 0x370 && c <= 0x1FFF) || (c >= 0x3040 && c <= 0x30FF) ||
        (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7A3) ||
        (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF21 && c <= 0xFF3A) || (c >= 0xFF41 && c <= 0xFF5A) ||
        (c >= 0x20000 && c <= 0x3FFFF)) return Cls::Letter;
    return Cls::Other;
}

// Lower case: ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic capitals (what European prompts use).
uint32_t lower(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
        bool odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
        if (odd_upper ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
        return c;
    }
    if ((c >= 0x391 && c <= 0x3A9 && c != 0x3A2) || (c >= 0x410 && c <= 0x42F)) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

nlohmann::json read_json(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw Error(Status::ModelFolder, "cannot open " + path);
    try {
        return nlohmann::json::parse(f);
    } catch (const std::exception& e) {
        throw Error(Status::ModelFolder, "corrupt JSON in " + path + ": " + e.what());
    }
}

}  // namespace

ClipTokenizer ClipTokenizer::from_folder(const std::string& folder) {
    ClipTokenizer t;
    // GPT-2's reversible byte -> printable unicode character table
    std::vector<int> bs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    std::vector<int> cs = bs;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
        if (std::find(bs.begin(), bs.end(), b) == bs.end()) { bs.push_back(b); cs.push_back(256 + n++); }
    }
    for (size_t i = 0; i < bs.size(); ++i) t.byte_to_unicode_[bs[i]] = utf8(static_cast<uint32_t>(cs[i]));

    const nlohmann::json vocab = read_json(folder + "/vocab.json");   // kept alive while iterating
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        if (!it.value().is_number_integer()) throw Error(Status::ModelFolder, "vocab.json: " + it.key() + " has no id");
        t.vocab_[it.key()] = it.value().get<int>();
    }
    std::ifstream merges(folder + "/merges.txt");
    if (!merges) throw Error(Status::ModelFolder, "cannot open " + folder + "/merges.txt");
    std::string line;
    int rank = 0;
    while (std::getline(merges, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line.rfind("#version", 0) == 0) continue;
        auto sp = line.find(' ');
        if (sp == std::string::npos) continue;
        t.ranks_[{line.substr(0, sp), line.substr(sp + 1)}] = rank++;
    }
    std::ifstream cfg_file(folder + "/tokenizer_config.json");
    if (cfg_file) {
        auto cfg = read_json(folder + "/tokenizer_config.json");
        if (cfg.contains("model_max_length") && cfg["model_max_length"].is_number()) {
            double m = cfg["model_max_length"].get<double>();
            if (m > 0 && m <= 10000) t.max_length_ = static_cast<int>(m);
        }
    }
    t.bos_ = t.id_of(t.bos_text_);
    t.eos_ = t.unk_ = t.pad_ = t.id_of(t.eos_text_);
    return t;
}

int ClipTokenizer::id_of(const std::string& token) const {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) throw Error(Status::ModelFolder, "tokenizer vocabulary has no token " + token);
    return it->second;
}

std::vector<std::string> ClipTokenizer::pre_tokenize(const std::string& text) const {
    // CLIP: <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
    static const char* contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    auto cls_at = [&](size_t i) { return classify(code_point(text, i, char_len(text, i))); };
    std::vector<std::string> out;
    size_t i = 0;
    while (i < text.size()) {
        Cls c = cls_at(i);
        if (c == Cls::Space) { i += char_len(text, i); continue; }
        bool matched = false;
        for (const std::string& sp : {bos_text_, eos_text_}) {
            if (text.compare(i, sp.size(), sp) == 0) { out.push_back(sp); i += sp.size(); matched = true; break; }
        }
        if (matched) continue;
        if (text[i] == '\'') {
            for (const char* k : contractions) {
                std::string ks(k);
                if (text.compare(i, ks.size(), ks) == 0) { out.push_back(ks); i += ks.size(); matched = true; break; }
            }
            if (matched) continue;
        }
        size_t j = i + char_len(text, i);
        if (c == Cls::Letter || c == Cls::Other) {
            while (j < text.size() && cls_at(j) == c) j += char_len(text, j);
        }
        out.push_back(text.substr(i, j - i));
        i = j;
    }
    return out;
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& word) const {
    std::vector<std::string> sym;
    for (unsigned char b : word) sym.push_back(byte_to_unicode_[b]);
    if (sym.empty()) return sym;
    sym.back() += "</w>";
    while (sym.size() > 1) {
        int best = INT_MAX;
        size_t at = 0;
        for (size_t k = 0; k + 1 < sym.size(); ++k) {
            auto it = ranks_.find({sym[k], sym[k + 1]});
            if (it != ranks_.end() && it->second < best) { best = it->second; at = k; }
        }
        if (best == INT_MAX) break;
        // merge every occurrence of the best pair, left to right
        std::vector<std::string> merged;
        const std::string a = sym[at], b = sym[at + 1];
        for (size_t k = 0; k < sym.size();) {
            if (k + 1 < sym.size() && sym[k] == a && sym[k + 1] == b) { merged.push_back(a + b); k += 2; }
            else { merged.push_back(sym[k]); k += 1; }
        }
        sym.swap(merged);
    }
    return sym;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& prompt) const {
    // normalise: whitespace runs -> one space, ASCII lower case
    std::string text;
    bool space = false;
    for (size_t i = 0; i < prompt.size();) {
        size_t n = char_len(prompt, i);
        uint32_t c = code_point(prompt, i, n), lc = lower(c);
        std::string original = prompt.substr(i, n);
        i += n;
        if (classify(c) == Cls::Space) { space = true; continue; }
        if (space && !text.empty()) text += ' ';
        space = false;
        text += lc == c ? original : utf8(lc);   // unchanged characters keep their bytes (even malformed ones)
    }
    std::vector<int64_t> ids{bos_};
    for (const std::string& piece : pre_tokenize(text)) {
        if (piece == bos_text_ || piece == eos_text_) { ids.push_back(id_of(piece)); continue; }
        for (const std::string& s : bpe(piece)) {
            auto it = vocab_.find(s);
            ids.push_back(it == vocab_.end() ? unk_ : it->second);
        }
    }
    if (static_cast<int>(ids.size()) > max_length_ - 1) ids.resize(max_length_ - 1);
    ids.push_back(eos_);
    ids.resize(max_length_, pad_);
    return ids;
}

}  // namespace ldm3d
