using System.Collections.Immutable;
using System.Runtime.InteropServices;

namespace Backprop.Core;

/// <summary>A kind of thing that a name selects: an activation, a loss, a layer kind, an optimizer.</summary>
public interface INamedKind
{
    /// <summary>The canonical name, as files and options write it.</summary>
    string Name { get; }

    /// <summary>Other names accepted where a user names it (never written to files).</summary>
    IReadOnlyList<string> Aliases => [];
}

/// <summary>
/// The kinds that names select, as an immutable value: a registry in registration order, looked up by name or alias.
/// <see cref="With"/> returns a new registry with one more kind (or one replaced by name) and leaves this one alone,
/// so a registry can be shared between threads and models, and a program extends the built-ins without global state.
/// Each kind of thing has its registry class (<c>ActivationRegistry</c>, <c>LossRegistry</c>, …) deriving from this one.
/// </summary>
public abstract class KindRegistry<TKind, TSelf>
    where TKind : class, INamedKind
    where TSelf : KindRegistry<TKind, TSelf>
{
    private readonly ImmutableArray<TKind> _kinds;
    // Names and aliases in an immutable array, searched in order: a dozen names. A frozen dictionary's analysis of its
    // keys was most of the registries' 3% of a Native AOT `backprop grad`'s start, and a plain Dictionary is mutable
    // static state (ComputeContextTests.TheLibraryHasNoMutableStaticState).
    private readonly ImmutableArray<KeyValuePair<string, TKind>> _byName;

    /// <summary>
    /// A registry of <paramref name="kinds"/> in the given order; each kind is found by its name and then by its aliases
    /// (an alias never shadows a name, and the first kind to claim an alias keeps it).
    /// </summary>
    /// <exception cref="ArgumentException">Two kinds have the same <see cref="INamedKind.Name"/>.</exception>
    protected KindRegistry(IEnumerable<TKind> kinds)
    {
        _kinds = [.. kinds];
        var byName = new List<KeyValuePair<string, TKind>>();
        foreach (var k in _kinds)
        {
            if (IndexOf(CollectionsMarshal.AsSpan(byName), k.Name) >= 0) throw new ArgumentException($"two kinds are named '{k.Name}'", nameof(kinds));
            byName.Add(new(k.Name, k));
        }
        foreach (var k in _kinds)
            foreach (var alias in k.Aliases)
                if (IndexOf(CollectionsMarshal.AsSpan(byName), alias) < 0) byName.Add(new(alias, k));
        _byName = [.. byName];
    }

    /// <summary>Makes the registry of this class that holds <paramref name="kinds"/>.</summary>
    protected abstract TSelf WithKinds(IEnumerable<TKind> kinds);

    /// <summary>The kinds in registration order.</summary>
    public IReadOnlyList<TKind> Kinds => _kinds;

    /// <summary>The canonical names in registration order.</summary>
    public IReadOnlyList<string> Names => [.. _kinds.Select(k => k.Name)];

    /// <summary>A new registry with <paramref name="kind"/> added, or replacing the kind of the same name in its place.</summary>
    public TSelf With(TKind kind)
    {
        ArgumentNullException.ThrowIfNull(kind);
        for (int i = 0; i < _kinds.Length; i++)
            if (_kinds[i].Name == kind.Name) return WithKinds(_kinds.SetItem(i, kind));
        return WithKinds(_kinds.Add(kind));
    }

    /// <summary>The kind called <paramref name="name"/> (canonical or alias); null if there is none.</summary>
    public TKind? Find(string name)
    {
        int i = IndexOf(_byName.AsSpan(), name);
        return i < 0 ? null : _byName[i].Value;
    }

    private static int IndexOf(ReadOnlySpan<KeyValuePair<string, TKind>> names, string name)
    {
        for (int i = 0; i < names.Length; i++)
            if (string.Equals(names[i].Key, name, StringComparison.Ordinal)) return i;
        return -1;
    }

    /// <summary>Whether a kind answers to <paramref name="name"/>.</summary>
    public bool Contains(string name) => Find(name) is not null;

    /// <summary>Whether <paramref name="name"/> is a canonical name (as written in files), not only an alias.</summary>
    public bool IsCanonical(string name) => Find(name) is { } k && k.Name == name;
}
