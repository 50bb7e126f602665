--- bitnet.template.lexer: Jinja source -> tokens.
--
-- Applies the whitespace rules as it goes (trim_blocks, lstrip_blocks, the
-- -/+ markers), so the parser sees data tokens already stripped.

local tonumber = tonumber
local concat, sfind, sformat, sgmatch = table.concat, string.find, string.format, string.gmatch
local sgsub, smatch, ssub = string.gsub, string.match, string.sub

local V = require("bitnet.template.value")
local lstrip_ws, rstrip_ws, syntax_error, utf8_encode = V.lstrip_ws, V.rstrip_ws, V.syntax_error, V.utf8_encode
local ws_at = V.ws_at

---------------------------------------------------------------------------
-- Lexer
---------------------------------------------------------------------------

local OPS2 = { ["//"] = true, ["**"] = true, ["=="] = true, ["!="] = true, [">="] = true, ["<="] = true }
local OPS1 = {}
for c in sgmatch("+-*/%~<>=.,:|()[]{}", ".") do OPS1[c] = true end
local OPEN = { ["("] = ")", ["["] = "]", ["{"] = "}" }

local STR_ESC = { n = "\n", t = "\t", r = "\r", ["\\"] = "\\", ["'"] = "'", ['"'] = '"',
  a = "\a", b = "\b", f = "\f", v = "\v", ["\n"] = "" }

-- Decode a Jinja string literal body (Python unicode-escape rules).
local function unescape(body, line)
  if not sfind(body, "\\", 1, true) then return body end
  local out, i, n = {}, 1, #body
  while i <= n do
    local p = sfind(body, "\\", i, true)
    if not p then out[#out + 1] = ssub(body, i); break end
    out[#out + 1] = ssub(body, i, p - 1)
    local c = ssub(body, p + 1, p + 1)
    local hexlen = c == "x" and 2 or c == "u" and 4 or c == "U" and 8 or nil
    if STR_ESC[c] then
      out[#out + 1] = STR_ESC[c]
      i = p + 2
    elseif hexlen then
      local hex = ssub(body, p + 2, p + 1 + hexlen)
      if #hex ~= hexlen or not smatch(hex, "^[0-9A-Fa-f]+$") then
        syntax_error(line, "truncated \\" .. c .. " escape in string literal")
      end
      local cp = tonumber(hex, 16)
      if cp > 0x10FFFF then syntax_error(line, "illegal Unicode character \\" .. c .. hex .. " in string literal") end
      out[#out + 1] = utf8_encode(cp)
      i = p + 2 + hexlen
    elseif smatch(c, "^[0-7]$") then
      local oct = smatch(body, "^[0-7][0-7]?[0-7]?", p + 1)
      out[#out + 1] = utf8_encode(tonumber(oct, 8))
      i = p + 1 + #oct
    else
      out[#out + 1] = "\\"
      i = p + 1
    end
  end
  return concat(out)
end

-- Tokens: { k = kind, v = value, line = n }. Kinds: data, var_begin,
-- var_end, block_begin, block_end, name, string, number, op, eof.
local function lex(src)
  src = sgsub(src, "\r\n?", "\n")
  if ssub(src, -1) == "\n" then src = ssub(src, 1, -2) end -- keep_trailing_newline=False
  local toks, nt = {}, 0
  local pos, line, n = 1, 1, #src
  local line_starting = true

  local function emit(k, v, l)
    nt = nt + 1
    toks[nt] = { k = k, v = v, line = l }
  end
  local function count_nl(a, b)
    local _, c = sgsub(ssub(src, a, b), "\n", "")
    return c
  end
  -- Consume the end of a tag starting at p (the sign or the closing chars):
  -- '-' strips all following whitespace, '+' nothing, otherwise trim_blocks
  -- eats one newline (for blocks and comments only).
  local function finish_tag(p, close_len, sign, trims)
    local after = p + #sign + close_len
    if sign == "-" then
      while after <= n do
        local w = ws_at(src, after)
        if w == 0 then break end
        after = after + w
      end
    elseif sign == "" and trims and ssub(src, after, after) == "\n" then
      after = after + 1
    end
    line = line + count_nl(p, after - 1)
    line_starting = ssub(src, after - 1, after - 1) == "\n"
    return after
  end
  -- Apply '-' / lstrip_blocks to the text before a tag.
  local function strip_text(text, sign, lstrip)
    if sign == "-" then return rstrip_ws(text) end
    if sign ~= "+" and lstrip then
      local l_pos = 0
      local i = 0
      while true do
        local q = sfind(text, "\n", i + 1, true)
        if not q then break end
        l_pos, i = q, q
      end
      if l_pos > 0 or line_starting then
        local tail = ssub(text, l_pos + 1)
        if tail ~= "" and lstrip_ws(tail) == "" then return ssub(text, 1, l_pos) end
      end
    end
    return text
  end

  -- Expression tokens up to the closing delimiter of a {{ }} or {% %} tag.
  local function lex_tag(p, is_block, tag_line)
    local depth = {}
    while true do
      while p <= n do
        local w = ws_at(src, p)
        if w == 0 then break end
        if ssub(src, p, p) == "\n" then line = line + 1 end
        p = p + w
      end
      if p > n then
        syntax_error(tag_line, is_block and "missing end of block tag '%}'" or "missing end of variable tag '}}'")
      end
      if #depth == 0 then
        local close = is_block and "%}" or "}}"
        local sign = ssub(src, p, p)
        if (sign == "-" or (sign == "+" and is_block)) and ssub(src, p + 1, p + 2) == close then
          emit(is_block and "block_end" or "var_end", nil, line)
          return finish_tag(p, 2, sign, is_block)
        elseif ssub(src, p, p + 1) == close then
          emit(is_block and "block_end" or "var_end", nil, line)
          return finish_tag(p, 2, "", is_block)
        end
      end
      local c = ssub(src, p, p)
      local s, e = sfind(src, "^[A-Za-z_][A-Za-z0-9_]*", p)
      if s then
        emit("name", ssub(src, s, e), line)
        p = e + 1
      elseif smatch(c, "^[0-9]$") then
        local _, e1 = sfind(src, "^[0-9][0-9_]*", p)
        local e2 = e1
        local _, fe = sfind(src, "^%.[0-9][0-9_]*", e2 + 1)
        if fe then e2 = fe end
        local _, ee = sfind(src, "^[eE][+-]?[0-9][0-9_]*", e2 + 1)
        if ee then e2 = ee end
        emit("number", tonumber((sgsub(ssub(src, p, e2), "_", ""))) + 0.0, line)
        p = e2 + 1
      elseif c == "'" or c == '"' then
        local q = p + 1
        while true do
          local ch = ssub(src, q, q)
          if ch == "" then syntax_error(line, "unterminated string literal") end
          if ch == "\\" then q = q + 2
          elseif ch == c then break
          else q = q + 1 end
        end
        local body = ssub(src, p + 1, q - 1)
        emit("string", unescape(body, line), line)
        line = line + count_nl(p, q)
        p = q + 1
      else
        local two = ssub(src, p, p + 1)
        local op
        if OPS2[two] then op = two elseif OPS1[c] then op = c end
        if not op then syntax_error(line, sformat("unexpected char '%s'", c)) end
        if OPEN[op] then
          depth[#depth + 1] = OPEN[op]
        elseif op == ")" or op == "]" or op == "}" then
          if #depth == 0 then syntax_error(line, sformat("unexpected '%s'", op)) end
          local want = depth[#depth]
          if want ~= op then syntax_error(line, sformat("unexpected '%s', expected '%s'", op, want)) end
          depth[#depth] = nil
        end
        emit("op", op, line)
        p = p + #op
      end
    end
  end

  while pos <= n do
    local s = sfind(src, "{[{%%#]", pos)
    if not s then
      emit("data", ssub(src, pos), line)
      break
    end
    local text = ssub(src, pos, s - 1)
    local kind_c = ssub(src, s + 1, s + 1)
    local sign = ssub(src, s + 2, s + 2)
    if sign ~= "-" and sign ~= "+" then sign = "" end
    local inner = s + 2 + #sign
    local text_line = line
    text = strip_text(text, sign, kind_c ~= "{")
    if text ~= "" then emit("data", text, text_line) end
    line = line + count_nl(pos, s - 1)
    local tag_line = line

    if kind_c == "#" then
      local e = sfind(src, "#}", inner, true)
      if not e then syntax_error(tag_line, "missing end of comment tag") end
      local esign = ""
      if e - 1 >= inner then
        local c = ssub(src, e - 1, e - 1)
        if c == "-" or c == "+" then esign = c end
      end
      line = line + count_nl(s, e - 1 - #esign)
      pos = finish_tag(e - #esign, 2, esign, true)
    else
      local raw_s, raw_e = sfind(src, "^[ \t\n\f\v]*raw[ \t\n\f\v]*", inner)
      local raw_close
      if kind_c == "%" and raw_s then
        if ssub(src, raw_e + 1, raw_e + 3) == "-%}" then raw_close = "-"
        elseif ssub(src, raw_e + 1, raw_e + 2) == "%}" then raw_close = "" end
      end
      if raw_close then
        -- {% raw %}: the opening tag never trims the newline after it.
        local after = raw_e + 1 + #raw_close + 2
        if raw_close == "-" then
          while after <= n and ws_at(src, after) > 0 do after = after + ws_at(src, after) end
        end
        line = line + count_nl(s, after - 1)
        line_starting = ssub(src, after - 1, after - 1) == "\n"
        local search = after
        local es, ee, esign
        while true do
          es = sfind(src, "{%", search, true)
          if not es then syntax_error(tag_line, "missing end of raw directive") end
          local sg = ssub(src, es + 2, es + 2)
          if sg ~= "-" and sg ~= "+" then sg = "" end
          local _, ne = sfind(src, "^[ \t\n\f\v]*endraw[ \t\n\f\v]*", es + 2 + #sg)
          if ne then
            local c = ssub(src, ne + 1, ne + 1)
            local cs = (c == "-" or c == "+") and c or ""
            if ssub(src, ne + 1 + #cs, ne + 2 + #cs) == "%}" then
              ee, esign = ne + 1, cs
              local body = strip_text(ssub(src, after, es - 1), sg, true)
              if body ~= "" then emit("data", body, line) end
              break
            end
          end
          search = es + 2
        end
        line = line + count_nl(after, ee - 1)
        pos = finish_tag(ee, 2, esign, true)
      else
        emit(kind_c == "{" and "var_begin" or "block_begin", nil, tag_line)
        pos = lex_tag(inner, kind_c == "%", tag_line)
      end
    end
  end
  emit("eof", nil, line)
  return toks
end

return {
  lex = lex,
}
