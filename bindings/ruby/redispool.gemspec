# frozen_string_literal: true

# The gem of the Ruby binding. Build it here, in bindings/ruby:
#
#   gem build redispool.gemspec
#   gem install ./redispool-X.Y.Z.gem
#
# The gem is pure Ruby: it loads the C library libredispool (installed by
# scripts/install.sh, found by its SONAME libredispool.so.0) through the ffi gem.
# Its version and license are the C library's, read from the repository's
# Cargo.toml; lib/redispool/version.rb must carry the same version.

require_relative "lib/redispool/version"

cargo_toml = File.expand_path("../../Cargo.toml", __dir__)
package = {}
if File.file?(cargo_toml)
  # The [package] table's plain `key = "value"` lines (all this needs of TOML).
  section = nil
  File.foreach(cargo_toml) do |line|
    if (m = line.match(/\A\s*\[([^\]]+)\]/))
      section = m[1].strip
    elsif section == "package" && (m = line.match(/\A\s*(\w+)\s*=\s*"([^"]*)"/))
      package[m[1]] ||= m[2]
    end
  end
  if package["version"] != RedisPool::VERSION
    raise "redispool.gemspec: Cargo.toml has version #{package["version"].inspect} but " \
          "lib/redispool/version.rb has #{RedisPool::VERSION.inspect}: make them equal"
  end
end

Gem::Specification.new do |spec|
  spec.name = "redispool"
  spec.version = RedisPool::VERSION
  spec.summary = "Ruby binding of libredispool, a Redis connection pool with go-redis semantics"
  spec.description = <<~DESC.tr("\n", " ").strip
    A thread-safe Redis connection pool (go-redis pool semantics: turns, health
    checks, min idle conns, timeouts, cancellation) implemented in the C library
    libredispool, used through the ffi gem. Needs libredispool.so.0 installed.
  DESC
  spec.authors = ["redispool contributors"]
  spec.license = package.fetch("license", "MIT OR Apache-2.0")
  spec.required_ruby_version = ">= 3.0"
  spec.requirements << "libredispool.so.0 (the C library: scripts/install.sh in the redispool repository)"
  spec.files = Dir.glob("lib/**/*.rb", base: __dir__).sort + %w[README.md redispool.gemspec]
  spec.require_paths = ["lib"]
  spec.add_dependency "ffi", ">= 1.15", "< 2"
  spec.metadata["rubygems_mfa_required"] = "true"
end
