using System.Numerics;
using Backprop.Autodiff;

namespace Backprop.Ops;

/// <summary>
/// Arithmetic operators on <see cref="Var{T}"/>: each records the op of <see cref="Functional"/> on the operands' tape.
/// They are extension operators so that Autodiff (the tape and its values) does not depend on Ops (what is recorded).
/// </summary>
public static class VarOperators
{
    extension<T>(Var<T>) where T : unmanaged, IFloatingPointIeee754<T>
    {
        /// <summary>A + B with broadcasting (<see cref="Functional.Add"/>).</summary>
        public static Var<T> operator +(Var<T> a, Var<T> b) => Functional.Add(a, b);
        /// <summary>A − B with broadcasting (<see cref="Functional.Sub"/>).</summary>
        public static Var<T> operator -(Var<T> a, Var<T> b) => Functional.Sub(a, b);
        /// <summary>The element-wise product A ⊙ B with broadcasting (<see cref="Functional.Mul"/>); for the matrix product use <see cref="Functional.MatMul"/>.</summary>
        public static Var<T> operator *(Var<T> a, Var<T> b) => Functional.Mul(a, b);
        /// <summary>A ⊘ B element-wise with broadcasting (<see cref="Functional.Div"/>).</summary>
        public static Var<T> operator /(Var<T> a, Var<T> b) => Functional.Div(a, b);
        /// <summary>−A (<see cref="Functional.Neg"/>).</summary>
        public static Var<T> operator -(Var<T> a) => Functional.Neg(a);
        /// <summary>A + s for every element (<see cref="Functional.AddScalar"/>).</summary>
        public static Var<T> operator +(Var<T> a, double s) => Functional.AddScalar(a, s);
        /// <summary>A − s for every element, recorded as adding −s.</summary>
        public static Var<T> operator -(Var<T> a, double s) => Functional.AddScalar(a, -s);
        /// <summary>s·A (<see cref="Functional.MulScalar"/>).</summary>
        public static Var<T> operator *(Var<T> a, double s) => Functional.MulScalar(a, s);
        /// <summary>s·A (<see cref="Functional.MulScalar"/>).</summary>
        public static Var<T> operator *(double s, Var<T> a) => Functional.MulScalar(a, s);
        /// <summary>A / s, recorded as multiplying by 1/s.</summary>
        public static Var<T> operator /(Var<T> a, double s) => Functional.MulScalar(a, 1.0 / s);
    }
}
