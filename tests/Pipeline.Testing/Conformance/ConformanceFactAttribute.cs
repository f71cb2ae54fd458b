using Xunit.Abstractions;
using Xunit.Sdk;

namespace Pipeline.Testing.Conformance;

/// <summary>
/// A conformance case that may not apply to every source: when it throws
/// <see cref="ConformanceSkipException"/> (the suite's <c>SkipUnless</c>) it is reported
/// as skipped with that reason, so the test output shows per source which cases ran. xunit 2.9
/// has no dynamic skip (its <c>Assert.Skip</c> needs v3), so the case's own runner turns that one
/// exception into a skip; every other failure stays a failure.
/// </summary>
[XunitTestCaseDiscoverer("Pipeline.Testing.Conformance.ConformanceFactDiscoverer", "Pipeline.Testing")]
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ConformanceFactAttribute : FactAttribute;

/// <summary>Thrown to skip a conformance case that does not apply to the source under test.</summary>
public sealed class ConformanceSkipException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ConformanceSkipException()
    {
    }

    /// <summary>Creates the exception with the reason the test output shows.</summary>
    public ConformanceSkipException(string reason)
        : base(reason)
    {
    }

    /// <summary>Creates the exception with a reason and a cause.</summary>
    public ConformanceSkipException(string reason, Exception inner)
        : base(reason, inner)
    {
    }
}

/// <summary>Finds <see cref="ConformanceFactAttribute"/> cases.</summary>
public sealed class ConformanceFactDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    /// <inheritdoc/>
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        ArgumentNullException.ThrowIfNull(discoveryOptions);
        return [new ConformanceTestCase(diagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod)];
    }
}

/// <summary>A test case whose <see cref="ConformanceSkipException"/> is reported as a skip.</summary>
public sealed class ConformanceTestCase : XunitTestCase
{
    /// <summary>For the runner's deserialization only.</summary>
    [Obsolete("For deserialization only.")]
    public ConformanceTestCase()
    {
    }

    /// <summary>Creates the case.</summary>
    public ConformanceTestCase(IMessageSink diagnosticMessageSink, TestMethodDisplay display, TestMethodDisplayOptions options, ITestMethod testMethod)
        : base(diagnosticMessageSink, display, options, testMethod)
    {
    }

    /// <inheritdoc/>
    public override async Task<RunSummary> RunAsync(IMessageSink diagnosticMessageSink, IMessageBus messageBus, object[] constructorArguments, ExceptionAggregator aggregator, CancellationTokenSource cancellationTokenSource)
    {
        using var skipping = new SkippingMessageBus(messageBus);
        var summary = await base.RunAsync(diagnosticMessageSink, skipping, constructorArguments, aggregator, cancellationTokenSource).ConfigureAwait(false);
        summary.Failed -= skipping.Skipped;
        summary.Skipped += skipping.Skipped;
        return summary;
    }

    /// <summary>Passes every message on, a failure by <see cref="ConformanceSkipException"/> as a skip.</summary>
    private sealed class SkippingMessageBus(IMessageBus inner) : IMessageBus
    {
        private static readonly string SkipType = typeof(ConformanceSkipException).FullName!;
        private int _skipped;

        public int Skipped => Volatile.Read(ref _skipped);

        public bool QueueMessage(IMessageSinkMessage message)
        {
            if (message is ITestFailed failed && failed.ExceptionTypes is [var outer, ..] && outer == SkipType)
            {
                Interlocked.Increment(ref _skipped);
                return inner.QueueMessage(new TestSkipped(failed.Test, failed.Messages[0]));
            }

            return inner.QueueMessage(message);
        }

        public void Dispose()
        {
            // The inner bus belongs to the runner.
        }
    }
}
