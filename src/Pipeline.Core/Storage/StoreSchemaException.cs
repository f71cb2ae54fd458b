namespace Pipeline.Storage;

/// <summary>The store's schema was written by a newer Pipeline than this one; it is left untouched.</summary>
public sealed class StoreSchemaException : Exception
{
    /// <summary>Names both versions and what to do.</summary>
    public StoreSchemaException(string store, int found, int supported)
        : base($"The {store} schema is version {found}, newer than this Pipeline supports (version {supported}); upgrade Pipeline, or point it at another store. Nothing was changed.")
    {
        Found = found;
        Supported = supported;
    }

    /// <summary>The version the store holds.</summary>
    public int Found { get; }

    /// <summary>The newest version this code understands.</summary>
    public int Supported { get; }
}
